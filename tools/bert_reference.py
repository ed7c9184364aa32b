"""A PyTorch reference for BERT-family encoders, written from the semantics
of Hugging Face's BertModel (embeddings, self-attention with the padding
mask, exact erf GELU, post-LayerNorm blocks) and sentence-transformers'
Pooling and Normalize modules, independent of ctxembed's C++; and a writer
of random-weight model directories in the exact sentence-transformers
layout (config.json, model.safetensors, vocab.txt, tokenizer.json,
tokenizer_config.json, modules.json, 1_Pooling/config.json,
sentence_bert_config.json).

Used by tests/python/test_transformer.py and bench/compare_bert.py.
"""
import json
import math
import os
import shutil

import torch

import export_torch


class BertReference(torch.nn.Module):
    def __init__(self, vocab_size, hidden=384, layers=6, heads=12,
                 intermediate=1536, max_positions=512, type_vocab=2,
                 eps=1e-12, seed=0, std=0.02):
        super().__init__()
        g = torch.Generator().manual_seed(seed)

        def w(*shape):
            return torch.nn.Parameter(torch.randn(*shape, generator=g) * std)

        def norm():
            return (torch.nn.Parameter(1 + torch.randn(hidden, generator=g) * 0.1),
                    torch.nn.Parameter(torch.randn(hidden, generator=g) * 0.1))
        self.hidden, self.heads, self.eps = hidden, heads, eps
        self.shape = dict(vocab_size=vocab_size, hidden_size=hidden,
                          num_hidden_layers=layers, num_attention_heads=heads,
                          intermediate_size=intermediate,
                          max_position_embeddings=max_positions,
                          type_vocab_size=type_vocab, layer_norm_eps=eps)
        self.params = {}
        p = self.params
        p["embeddings.word_embeddings.weight"] = w(vocab_size, hidden)
        p["embeddings.position_embeddings.weight"] = w(max_positions, hidden)
        p["embeddings.token_type_embeddings.weight"] = w(type_vocab, hidden)
        p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"] = norm()
        for i in range(layers):
            l = "encoder.layer.%d." % i
            for part in ("query", "key", "value"):
                p[l + "attention.self.%s.weight" % part] = w(hidden, hidden)
                p[l + "attention.self.%s.bias" % part] = w(hidden)
            p[l + "attention.output.dense.weight"] = w(hidden, hidden)
            p[l + "attention.output.dense.bias"] = w(hidden)
            (p[l + "attention.output.LayerNorm.weight"],
             p[l + "attention.output.LayerNorm.bias"]) = norm()
            p[l + "intermediate.dense.weight"] = w(intermediate, hidden)
            p[l + "intermediate.dense.bias"] = w(intermediate)
            p[l + "output.dense.weight"] = w(hidden, intermediate)
            p[l + "output.dense.bias"] = w(hidden)
            (p[l + "output.LayerNorm.weight"],
             p[l + "output.LayerNorm.bias"]) = norm()
        # The pooler BertModel has (ctxembed does not use it).
        p["pooler.dense.weight"] = w(hidden, hidden)
        p["pooler.dense.bias"] = w(hidden)
        for i, (k, v) in enumerate(sorted(p.items())):
            self.register_parameter("p%d" % i, v)
        self.layers = layers

    def round_to(self, dtype):
        """Rounds every weight as ctxembed reads it back from `dtype`."""
        with torch.no_grad():
            for v in self.params.values():
                v.copy_(export_torch.round_to(dtype, v))

    def _ln(self, x, name):
        return torch.nn.functional.layer_norm(
            x, (self.hidden,), self.params[name + ".weight"],
            self.params[name + ".bias"], self.eps)

    def _dense(self, x, name):
        return x @ self.params[name + ".weight"].T + self.params[name + ".bias"]

    def forward(self, ids, mask):
        """ids, mask: [batch, length] (mask 1 for tokens, 0 for padding).
        Returns the last hidden states [batch, length, hidden]."""
        p = self.params
        b, n = ids.shape
        x = (p["embeddings.word_embeddings.weight"][ids]
             + p["embeddings.position_embeddings.weight"][:n][None]
             + p["embeddings.token_type_embeddings.weight"][0][None, None])
        x = self._ln(x, "embeddings.LayerNorm")
        d = self.hidden // self.heads
        # The extended attention mask: 0 for tokens, the dtype's minimum for
        # padding, added to the scores before the softmax.
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for i in range(self.layers):
            l = "encoder.layer.%d." % i

            def heads(t):
                return t.view(b, n, self.heads, d).transpose(1, 2)
            q = heads(self._dense(x, l + "attention.self.query"))
            k = heads(self._dense(x, l + "attention.self.key"))
            v = heads(self._dense(x, l + "attention.self.value"))
            scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias
            context = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2)
            context = context.reshape(b, n, self.hidden)
            a = self._ln(self._dense(context, l + "attention.output.dense") + x,
                         l + "attention.output.LayerNorm")
            inter = torch.nn.functional.gelu(
                self._dense(a, l + "intermediate.dense"))  # exact (erf)
            x = self._ln(self._dense(inter, l + "output.dense") + a,
                         l + "output.LayerNorm")
        return x


def pool(states, mask, mode, normalize):
    """sentence-transformers' Pooling (one mode) and Normalize."""
    m = mask[..., None].to(states.dtype)
    if mode == "cls":
        out = states[:, 0]
    elif mode == "max":
        out = torch.where(m > 0, states, torch.full_like(states, -1e9)).max(1).values
    elif mode == "mean":
        out = (states * m).sum(1) / m.sum(1).clamp(min=1e-9)
    elif mode == "mean_sqrt_len":
        out = (states * m).sum(1) / torch.sqrt(m.sum(1).clamp(min=1e-9))
    else:
        raise ValueError(mode)
    if normalize:
        out = torch.nn.functional.normalize(out, p=2, dim=1)
    return out


def encode(model, id_lists, mode, normalize):
    """Token states (one [len, hidden] per list) and pooled vectors of a
    right-padded batch, as sentence-transformers runs it."""
    n = max(len(ids) for ids in id_lists)
    ids = torch.zeros(len(id_lists), n, dtype=torch.long)
    mask = torch.zeros(len(id_lists), n, dtype=torch.long)
    for i, row in enumerate(id_lists):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    with torch.no_grad():
        states = model(ids, mask)
        pooled = pool(states, mask, mode, normalize)
    return [states[i, :len(row)] for i, row in enumerate(id_lists)], pooled


POOLING_KEYS = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens",
                "max": "pooling_mode_max_tokens",
                "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens"}


def write_tokenizer_files(out_dir, vocab, lowercase=True, max_length=512):
    """vocab.txt, tokenizer.json and tokenizer_config.json for `vocab` (a
    list of tokens; id = position), as the fast BERT tokenizer saves them."""
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    ids = {t: i for i, t in enumerate(vocab)}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [
            {"id": ids[t], "content": t, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": False, "special": True}
            for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in ids],
        "normalizer": {"type": "BertNormalizer", "clean_text": True,
                       "handle_chinese_chars": True, "strip_accents": None,
                       "lowercase": lowercase},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                t: {"id": t, "ids": [ids[t]], "tokens": [t]}
                for t in ("[CLS]", "[SEP]")}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]",
                  "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": ids},
    }
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": lowercase, "strip_accents": None,
                   "tokenize_chinese_chars": True, "model_max_length": max_length,
                   "unk_token": "[UNK]", "cls_token": "[CLS]",
                   "sep_token": "[SEP]", "pad_token": "[PAD]",
                   "mask_token": "[MASK]", "tokenizer_class": "BertTokenizer"},
                  f, indent=1)


def write_model_dir(out_dir, model, tokenizer_dir=None, vocab=None,
                    pooling="mean", normalize=True, dtype="f32", prefix="",
                    max_seq_length=256, modules=True):
    """A sentence-transformers model directory holding `model`'s weights.
    The tokenizer files are copied from `tokenizer_dir`, or written for
    `vocab`."""
    os.makedirs(out_dir, exist_ok=True)
    if tokenizer_dir:
        for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                     "special_tokens_map.json"):
            src = os.path.join(tokenizer_dir, name)
            if os.path.exists(src):
                shutil.copy(src, out_dir)
    else:
        write_tokenizer_files(out_dir, vocab)
    config = {"architectures": ["BertModel"], "model_type": "bert",
              "hidden_act": "gelu", "position_embedding_type": "absolute",
              "attention_probs_dropout_prob": 0.1, "hidden_dropout_prob": 0.1,
              "initializer_range": 0.02, "pad_token_id": 0,
              "torch_dtype": {"f32": "float32", "f16": "float16",
                              "bf16": "bfloat16"}[dtype],
              **model.shape}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    tensors = {prefix + k: v for k, v in model.params.items()}
    # BertModel saves its position_ids buffer in some versions (int64);
    # readers must ignore it. Written here as float to keep to the writer.
    export_torch.save_safetensors(os.path.join(out_dir, "model.safetensors"),
                                  tensors, dtype, metadata={"format": "pt"})
    if not modules:
        return
    entries = [{"idx": 0, "name": "0", "path": "",
                "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        entries.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        os.makedirs(os.path.join(out_dir, "2_Normalize"), exist_ok=True)
    with open(os.path.join(out_dir, "modules.json"), "w") as f:
        json.dump(entries, f, indent=1)
    os.makedirs(os.path.join(out_dir, "1_Pooling"), exist_ok=True)
    pooling_config = {"word_embedding_dimension": model.hidden,
                      "pooling_mode_weightedmean_tokens": False,
                      "pooling_mode_lasttoken": False, "include_prompt": True}
    for mode, key in POOLING_KEYS.items():
        pooling_config[key] = mode == pooling
    with open(os.path.join(out_dir, "1_Pooling", "config.json"), "w") as f:
        json.dump(pooling_config, f, indent=1)
    with open(os.path.join(out_dir, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": max_seq_length, "do_lower_case": False}, f)
