#!/usr/bin/python3
"""Exports a PyTorch encoder to a ctxembed model directory.

A ctxembed model directory is config.json (documented in model/README.md),
model.safetensors with the tensors under their PyTorch state_dict() names,
and, as the config asks, vocab.txt and a fastText .bin.

As a library:

    from export_torch import export_model, rnn_module_config
    config = {"name": "my-encoder", "max_tokens": 256,
              "tokenizer": {"kind": "words_and_punct", "lowercase": True},
              "embedding": {"kind": "table", "tensor": "embed.weight",
                            "vocab": "vocab.txt", "unk_token": "<unk>"},
              "encoder": [rnn_module_config("rnn", model.rnn)],
              "pooling": "mean"}
    export_model("out/my-encoder", config, model.state_dict(), vocab=vocab)

From the command line, for a checkpoint saved with
torch.save({"config": config, "state_dict": sd, "vocab": [...],
            "fasttext": "path/to/vectors.bin"}, "ckpt.pt")
(vocab and fasttext as the config needs):

    tools/export_torch.py ckpt.pt OUT_DIR [--dtype f32|f16|bf16]

python3-safetensors is not in Debian, so the format is written here:
an 8-byte little-endian header length, a JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}}, then the raw
little-endian tensor bytes, contiguous, in header order.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch

_DTYPES = {"f32": ("F32", torch.float32), "f16": ("F16", torch.float16),
           "bf16": ("BF16", torch.bfloat16)}


def _tensor_bytes(t, dtype):
    t = t.detach().to("cpu").contiguous()
    if dtype == "bf16":
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    np_dtype = "<f4" if dtype == "f32" else "<f2"
    return t.to(torch.float32).numpy().astype(np_dtype).tobytes()


def save_safetensors(path, tensors, dtype="f32", metadata=None):
    """Writes {name: tensor} to `path` with every tensor in `dtype`."""
    name, _ = _DTYPES[dtype]
    header, blobs, offset = {}, [], 0
    for key in sorted(tensors):
        data = _tensor_bytes(tensors[key], dtype)
        header[key] = {"dtype": name, "shape": list(tensors[key].shape),
                       "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def load_safetensors(path):
    """{name: float32 tensor} of a safetensors file (F32, F16 or BF16)."""
    with open(path, "rb") as f:
        data = f.read()
    size, = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + size])
    base = 8 + size
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin:base + end]
        if info["dtype"] == "F32":
            values = np.frombuffer(raw, "<f4")
        elif info["dtype"] == "F16":
            values = np.frombuffer(raw, "<f2").astype(np.float32)
        elif info["dtype"] == "BF16":
            values = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError("%s: tensor %s has dtype %s" % (path, key, info["dtype"]))
        out[key] = torch.from_numpy(values.reshape(info["shape"]).copy())
    return out


def round_to(dtype, tensor):
    """The tensor as ctxembed will read it back from `dtype`."""
    return tensor.detach().to(_DTYPES[dtype][1]).to(torch.float32)


def rnn_module_config(prefix, rnn, residual=False, concat_input=False):
    """The config.json entry for an nn.LSTM / nn.GRU at `prefix`: its output
    added to its input (residual), or after it (concat_input), or alone."""
    if isinstance(rnn, torch.nn.LSTM):
        kind = "lstm"
    elif isinstance(rnn, torch.nn.GRU):
        kind = "gru"
    else:
        raise TypeError("%s: only nn.LSTM and nn.GRU are supported" % prefix)
    if not rnn.bias or getattr(rnn, "proj_size", 0):
        raise ValueError("%s: bias=False and proj_size are not supported" % prefix)
    return {"kind": kind, "prefix": prefix, "input_size": rnn.input_size,
            "hidden_size": rnn.hidden_size, "num_layers": rnn.num_layers,
            "bidirectional": rnn.bidirectional, "residual": residual,
            "concat_input": concat_input}


def _towers(config):
    if "towers" in config:
        return [config["towers"]["enc0"], config["towers"]["enc1"]]
    return [config]


def needed_tensors(config, state_dict, vocab=None):
    """{name: expected shape or None} of every tensor the config reads."""
    need = {}
    for tower in _towers(config):
        emb = tower["embedding"]
        if emb["kind"] == "table":
            rows = len(vocab) if vocab is not None else None
            shape = state_dict[emb["tensor"]].shape
            need[emb["tensor"]] = (rows, shape[1]) if rows else None
        for m in tower.get("encoder", []):
            gates = 4 if m["kind"] == "lstm" else 3
            h, d = m["hidden_size"], 2 if m.get("bidirectional") else 1
            for k in range(m.get("num_layers", 1)):
                inp = m["input_size"] if k == 0 else d * h
                for suffix in ["_l%d" % k, "_l%d_reverse" % k][:d]:
                    p = m["prefix"] + "."
                    need[p + "weight_ih" + suffix] = (gates * h, inp)
                    need[p + "weight_hh" + suffix] = (gates * h, h)
                    need[p + "bias_ih" + suffix] = (gates * h,)
                    need[p + "bias_hh" + suffix] = (gates * h,)
        if "projection" in tower:
            _linear(need, tower["projection"]["prefix"], state_dict)
    for layer in config.get("comparator", {}).get("layers", []):
        _linear(need, layer["prefix"], state_dict)
    return need


def _linear(need, prefix, state_dict):
    need[prefix + ".weight"] = None
    if prefix + ".bias" in state_dict:
        need[prefix + ".bias"] = None


def export_model(out_dir, config, state_dict, vocab=None, fasttext=None,
                 dtype="f32"):
    """Writes config.json, model.safetensors (the tensors the config reads,
    checked against its shapes), vocab.txt and the fastText file."""
    config = dict(config)
    config.setdefault("ctxembed_format", 1)
    os.makedirs(out_dir, exist_ok=True)
    tensors = {}
    for name, shape in needed_tensors(config, state_dict, vocab).items():
        if name not in state_dict:
            raise KeyError("the config needs tensor %s; the state_dict has "
                           "none" % name)
        t = state_dict[name]
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise ValueError("tensor %s: expected shape %s, got %s"
                             % (name, list(shape), list(t.shape)))
        tensors[name] = t
    if tensors:
        config.setdefault("weights", "model.safetensors")
        save_safetensors(os.path.join(out_dir, config["weights"]), tensors,
                         dtype, {"format": "pt", "exported_by": "ctxembed"})
    for tower in _towers(config):
        emb = tower["embedding"]
        if emb["kind"] == "table":
            if vocab is None:
                raise ValueError("a table embedding needs the vocabulary")
            with open(os.path.join(out_dir, emb["vocab"]), "w",
                      encoding="utf-8") as f:
                f.write("".join(token + "\n" for token in vocab))
        elif emb["kind"] == "fasttext" and fasttext is not None:
            target = os.path.join(out_dir, emb["file"])
            if os.path.abspath(fasttext) != os.path.abspath(target):
                shutil.copyfile(fasttext, target)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out_dir")
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="f32")
    args = parser.parse_args(argv)
    ckpt = torch.load(args.checkpoint, map_location="cpu")
    export_model(args.out_dir, ckpt["config"], ckpt["state_dict"],
                 vocab=ckpt.get("vocab"), fasttext=ckpt.get("fasttext"),
                 dtype=args.dtype)
    print("exported to %s" % args.out_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
