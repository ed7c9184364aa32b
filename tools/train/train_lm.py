#!/usr/bin/python3
"""Encoder 1, "BlazingText + RNN": frozen fastText word vectors feed a
bidirectional LSTM trained as a bidirectional language model: the forward
direction's state after token t predicts token t+1, the backward
direction's state at t predicts token t-1, so every token's output depends
on its whole sentence. Sampled softmax keeps the 30k-word output cheap.

Usage: train_lm.py CORPUS_DIR FASTTEXT.bin OUT_DIR [--minutes 15]
Exports OUT_DIR as a ctxembed model (tools/export_torch.py), F16 weights.
"""
import argparse
import json
import os
import random

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import common
import export_torch
from torch_encoder import TorchEncoder


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("fasttext_bin")
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    common.set_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "2")))
    import fasttext
    ft = fasttext.load_model(args.fasttext_bin)
    sentences = list(common.read_sentences(os.path.join(args.corpus, "train.txt"),
                                           4, 40))
    random.Random(args.seed).shuffle(sentences)
    out_words, freq = common.build_vocab(sentences, 30000)
    out_id = {w: i for i, w in enumerate(out_words)}
    dim = ft.get_dimension()
    config = {
        "name": "bt-bilstm", "max_tokens": 256,
        "tokenizer": {"kind": "words_and_punct", "lowercase": True},
        "embedding": {"kind": "fasttext", "file": "vectors.bin"},
        "encoder": [{"kind": "lstm", "prefix": "rnn", "input_size": dim,
                     "hidden_size": args.hidden, "num_layers": 1,
                     "bidirectional": True, "residual": False}],
        "pooling": "mean"}
    enc = TorchEncoder(config, fasttext_model=ft)
    rnn = enc.rnns[0][0]
    softmax = common.SampledSoftmax(len(out_words), args.hidden, freq)
    params = list(rnn.parameters()) + list(softmax.parameters())
    cache = {}

    def vectors(tokens):
        for t in tokens:
            if t not in cache:
                cache[t] = torch.from_numpy(ft.get_word_vector(t).copy())
        return torch.stack([cache[t] for t in tokens])

    def loss_fn(batch):
        lengths = torch.tensor([len(s) for s in batch])
        x = torch.nn.utils.rnn.pad_sequence([vectors(s) for s in batch],
                                            batch_first=True)
        out, _ = rnn(pack_padded_sequence(x, lengths, batch_first=True,
                                          enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True)
        fwd, bwd = out[..., :args.hidden], out[..., args.hidden:]
        hs, ts = [], []
        for i, s in enumerate(batch):
            ids = torch.tensor([out_id.get(t, 0) for t in s])
            n = len(s)
            # Forward state at t predicts t+1; backward state at t, t-1.
            hs += [fwd[i, :n - 1], bwd[i, 1:n]]
            ts += [ids[1:], ids[:n - 1]]
        return softmax(torch.cat(hs), torch.cat(ts))

    summary = common.train(sentences, args.batch, args.seed, args.minutes,
                           params, loss_fn, args.out + ".log.jsonl")
    os.makedirs(args.out, exist_ok=True)
    common.slim_fasttext(args.fasttext_bin, os.path.join(args.out, "vectors.bin"))
    export_torch.export_model(args.out, config, enc.state_dict(), dtype="f16")
    summary["hidden"] = args.hidden
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("encoder 1 exported to %s: %s" % (args.out, json.dumps(summary)))


if __name__ == "__main__":
    main()
