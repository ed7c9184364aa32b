#!/usr/bin/python3
"""Regenerates the PyTorch golden models and their expected outputs.

For each case of a grid (LSTM and GRU, uni- and bidirectional, 1 to 3
layers, residual Sockeye-style stacks, odd sizes, F32 / F16 / BF16 weights,
table and fastText embeddings, projections, a dual encoder with a
comparator), builds a random-weight model with tools/torch_encoder.py,
exports it with tools/export_torch.py, and writes what PyTorch computes
(packed sequences, torch.no_grad) for sentences of 0 to 117 tokens:
expected.json (texts, tokens, sizes) and expected.f32 (little-endian
float32: per sentence its token vectors, then the pooled vectors; for the
dual case, enc0 then enc1 then the pair scores).

Usage: tests/golden/torch/generate.py   (Debian python3-torch, python3-fasttext)
"""
import json
import os
import random
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import export_torch  # noqa: E402
from torch_encoder import DualEncoder, TorchEncoder, tokenize  # noqa: E402

LENGTHS = [1, 2, 3, 7, 16, 40, 117, 0, 5]
FASTTEXT = os.path.join(ROOT, "tests", "golden", "models", "sg_d8", "vectors.bin")


def module(kind, prefix, inp, hidden, layers=1, bi=False, residual=False,
           concat_input=False):
    m = {"kind": kind, "prefix": prefix, "input_size": inp,
         "hidden_size": hidden, "num_layers": layers, "bidirectional": bi,
         "residual": residual}
    if concat_input:
        m["concat_input"] = True
    return m


def table(tensor="embed.weight"):
    return {"kind": "table", "tensor": tensor, "vocab": "vocab.txt",
            "unk_token": "<unk>"}


# name: (tower config, embedding dim, projection dim, dtype, tokenizer)
CASES = {
    "lstm_uni_odd": ({"embedding": table(), "pooling": "mean",
                      "encoder": [module("lstm", "rnn", 23, 37)]},
                     23, None, "f32", "whitespace"),
    "lstm_bi_2l_last": ({"embedding": table(), "pooling": "last",
                         "encoder": [module("lstm", "rnn", 16, 12, 2, True)]},
                        16, None, "f32", "whitespace"),
    "gru_bi_f16_max": ({"embedding": table(), "pooling": "max",
                        "encoder": [module("gru", "enc.gru", 10, 9, 1, True)]},
                       10, None, "f16", "words_and_punct"),
    "gru_uni_3l_proj": ({"embedding": table(), "pooling": "last",
                         "encoder": [module("gru", "rnn", 7, 11, 3)],
                         "projection": {"prefix": "proj"}, "normalize": True},
                        7, 5, "f32", "whitespace"),
    "sockeye_residual": ({"embedding": table("encoder.embed.weight"),
                          "pooling": "mean",
                          "encoder": [
                              module("lstm", "encoder.bi", 16, 8, 1, True),
                              module("lstm", "encoder.l1", 16, 16, 1, False,
                                     True),
                              module("lstm", "encoder.l2", 16, 16, 1, False,
                                     True)]},
                         16, None, "f32", "words_and_punct"),
    # The fastText file is the golden sg_d8 model's, shared, not copied.
    "fasttext_bilstm_bf16": ({"embedding": {"kind": "fasttext",
                                            "file": "../../models/sg_d8/vectors.bin"},
                              "pooling": "mean",
                              "encoder": [module("lstm", "rnn", 8, 10, 1,
                                                 True)]},
                             8, None, "bf16", "whitespace"),
    "bigru_2l_odd": ({"embedding": table(), "pooling": "mean",
                      "encoder": [module("gru", "rnn", 23, 37, 2, True)]},
                     23, None, "f32", "whitespace"),
    # Dense skips: each module's output is its input, then its states.
    "stack_concat_input": ({"embedding": table(), "pooling": "max",
                            "encoder": [
                                module("lstm", "enc.bi", 10, 8, 2, True,
                                       concat_input=True),
                                module("gru", "enc.top", 26, 9, 1, False,
                                       concat_input=True)],
                            "projection": {"prefix": "proj"}},
                           10, 6, "f32", "words_and_punct"),
}


def vocab_for(tokenizer):
    words = ["<unk>"] + ["w%d" % i for i in range(60)]
    if tokenizer == "words_and_punct":
        words += ["?", ",", "."]
    return words


def sentences(rng, vocab, tokenizer, lengths):
    """Texts whose tokens come from the vocabulary, with some unknown words,
    capitals and (for words_and_punct) attached punctuation."""
    texts = []
    for n in lengths:
        parts = []
        for _ in range(n):
            w = rng.choice(vocab[1:]) if rng.random() > 0.1 else "zz%d" % rng.randint(0, 9)
            if w in ("?", ",", ".") and parts:
                parts[-1] += w
            else:
                parts.append(w.upper() if rng.random() < 0.1 else w)
        texts.append(" ".join(parts))
    return texts


def round_params(module, dtype):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(export_torch.round_to(dtype, p))


def write_expected(out_dir, manifest, arrays):
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    data = np.concatenate([a.detach().numpy().reshape(-1) for a in arrays])
    data.astype("<f4").tofile(os.path.join(out_dir, "expected.f32"))


def single_case(name, spec, seed):
    tower, emb_dim, proj_dim, dtype, tok = spec
    torch.manual_seed(seed)
    rng = random.Random(seed)
    vocab = vocab_for(tok)
    ft = None
    if tower["embedding"]["kind"] == "fasttext":
        import fasttext
        ft = fasttext.load_model(FASTTEXT)
        vocab = ft.get_words()
    enc = TorchEncoder(tower, vocab=vocab, fasttext_model=ft,
                       embedding_dim=emb_dim, projection_dim=proj_dim)
    round_params(enc, dtype)
    lowercase = tok == "words_and_punct"
    config = dict(tower, name=name, max_tokens=256,
                  tokenizer={"kind": tok, "lowercase": lowercase})
    out_dir = os.path.join(HERE, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    export_torch.export_model(out_dir, config, enc.state_dict(),
                              vocab=vocab if ft is None else None, dtype=dtype)
    texts = sentences(rng, vocab, tok, LENGTHS)
    token_lists = [tokenize(t, tok, lowercase) for t in texts]
    with torch.no_grad():
        tokens, pooled = enc.encode(token_lists)
    manifest = {"kind": "single", "texts": texts, "tokens": token_lists,
                "token_dim": enc.token_dim, "output_dim": enc.output_dim}
    write_expected(out_dir, manifest, tokens + [pooled])


def dual_case(seed):
    name = "dual_o2v"
    torch.manual_seed(seed)
    rng = random.Random(seed)
    vocab = vocab_for("whitespace")
    config = {
        "name": name, "max_tokens": 256,
        "tokenizer": {"kind": "whitespace", "lowercase": False},
        "towers": {
            "enc0": {"embedding": table("q_embed.weight"), "pooling": "mean",
                     "encoder": [module("gru", "q_rnn", 9, 6, 1, True)]},
            "enc1": {"embedding": table("a_embed.weight"), "pooling": "mean"}},
        "comparator": {"layers": [{"prefix": "mlp.0", "activation": "relu"},
                                  {"prefix": "mlp.2"}],
                       "output": "softmax", "score_class": 1}}
    dual = DualEncoder(config, {
        "enc0": {"vocab": vocab, "embedding_dim": 9},
        "enc1": {"vocab": vocab, "embedding_dim": 12}}, comparator_sizes=[16, 2])
    out_dir = os.path.join(HERE, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    export_torch.export_model(out_dir, config, dual.state_dict(), vocab=vocab)
    a = sentences(rng, vocab, "whitespace", LENGTHS)
    b = sentences(rng, vocab, "whitespace", list(reversed(LENGTHS)))
    ta = [tokenize(t) for t in a]
    tb = [tokenize(t) for t in b]
    with torch.no_grad():
        tok0, u = dual.enc0.encode(ta)
        tok1, v = dual.enc1.encode(tb)
        scores = dual.score(u, v)
    manifest = {"kind": "dual", "texts": a, "tokens": ta, "texts_b": b,
                "tokens_b": tb, "token_dim": dual.enc0.token_dim,
                "token_dim_b": dual.enc1.token_dim,
                "output_dim": dual.enc0.output_dim}
    write_expected(out_dir, manifest, tok0 + [u] + tok1 + [v, scores])


def main():
    torch.set_num_threads(1)
    for i, (name, spec) in enumerate(sorted(CASES.items())):
        single_case(name, spec, 1000 + i)
    dual_case(2000)
    print("golden PyTorch models written under %s" % HERE)


if __name__ == "__main__":
    main()
