#!/usr/bin/python3
"""Regenerates the SIF pooling golden data with an implementation that
shares no code with ctxembed: fastText's own Python binding gives the word
counts and word vectors, PyTorch's recorded token vectors (the torch golden
`fasttext_bilstm_bf16`, expected.f32) give an encoder's outputs, and NumPy
does the weighting, the mean and the removal of the common components (the
top right singular vectors of the weighted means, as Arora et al. 2017 do).

Cases (each a model directory here, with config.json, components and
expected.json / expected.f32: per sentence its pooled vector):
  bag_bin   fastText .bin word vectors, counts from the .bin, a = 5e-4, k = 2
  bag_vec   the same vectors as a .vec text file, counts from counts.txt
            (written here from the .bin's counts), a = 1e-3, k = 1
  bilstm    fastText vectors -> the golden bi-LSTM, counts from the .bin,
            a = 1e-3, k = 1

Usage: tests/golden/sif/generate.py  (Debian python3-fasttext, python3-numpy)
"""
import json
import os
import random
import struct
import sys

import fasttext
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
BIN = os.path.join(GOLDEN, "models", "sg_d8", "vectors.bin")
VEC = os.path.join(GOLDEN, "models", "sg_d8_vec", "vectors.vec")
TORCH = os.path.join(GOLDEN, "torch", "fasttext_bilstm_bf16")


def sentences(words):
    with open(os.path.join(GOLDEN, "queries_sentences.txt")) as f:
        out = [l.rstrip("\n") for l in f]
    with open(os.path.join(GOLDEN, "extra_sentences.txt")) as f:
        out += [l.rstrip("\n") for l in f]
    rng = random.Random(7)
    for n in (1, 2, 3, 5, 8, 13, 21, 34, 0):
        # Frequent and rare words, and words fastText has never seen.
        out.append(" ".join(rng.choice(words) if rng.random() < 0.8 else
                            "zz%dq" % rng.randrange(100) for _ in range(n)))
    return out


def sif(token_vectors, tokens, counts, total, a):
    """Weighted mean of one sentence's token vectors (float64)."""
    if not tokens:
        return np.zeros(token_vectors.shape[1])
    w = np.array([a / (a + counts.get(t, 0) / total) for t in tokens])
    return (w[:, None] * token_vectors).sum(0) / len(tokens)


def remove_components(x, k):
    """The top k right singular vectors of x (rows: sentences), and x with
    its projections on them removed."""
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    u = vt[:k]
    return u, x - (x @ u.T) @ u


def write_components(path, u):
    """A safetensors file with one F32 tensor "components" [k x dim]."""
    data = u.astype("<f4").tobytes()
    header = json.dumps({"components": {"dtype": "F32", "shape": list(u.shape),
                                        "data_offsets": [0, len(data)]}})
    header += " " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header.encode() + data)


def write_case(name, config, texts, pooled, u):
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    write_components(os.path.join(out, "components.safetensors"), u)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"texts": texts, "dim": int(pooled.shape[1])}, f, indent=1)
    pooled.astype("<f4").tofile(os.path.join(out, "expected.f32"))


def read_vec(path):
    with open(path, encoding="utf-8") as f:
        n, dim = map(int, f.readline().split())
        table = {}
        for line in f:
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            table.setdefault(parts[0], np.array(parts[1:], dtype=np.float32))
    return table, dim


def main():
    ft = fasttext.load_model(BIN)
    words, freqs = ft.get_words(include_freq=True)
    counts = dict(zip(words, (int(c) for c in freqs)))
    total = float(sum(counts.values()))
    texts = sentences(words)
    tokens = [t.split() for t in texts]  # fastText's whitespace split
    base = {"ctxembed_format": 1, "max_tokens": 256,
            "tokenizer": {"kind": "whitespace"}, "encoder": [],
            "pooling": "sif"}

    # bag_bin: fastText's word vectors, counts from the .bin.
    dim = ft.get_dimension()
    x = np.array([sif(np.array([ft.get_word_vector(t) for t in s],
                               dtype=np.float64).reshape(len(s), dim),
                      s, counts, total, 5e-4) for s in tokens])
    u, pooled = remove_components(x, 2)
    write_case("bag_bin", dict(base, name="sif_bag_bin",
                               embedding={"kind": "fasttext",
                                          "file": "../../models/sg_d8/vectors.bin"},
                               sif={"a": 5e-4, "components": "components.safetensors"}),
               texts, pooled, u)

    # bag_vec: the .vec rows (zero for unknown words), counts from a file.
    table, _ = read_vec(VEC)
    os.makedirs(os.path.join(HERE, "bag_vec"), exist_ok=True)
    with open(os.path.join(HERE, "bag_vec", "counts.txt"), "w") as f:
        for w, c in zip(words, freqs):
            f.write("%s %d\n" % (w, c))
    x = np.array([sif(np.array([table.get(t, np.zeros(dim)) for t in s],
                               dtype=np.float64).reshape(len(s), dim),
                      s, counts, total, 1e-3) for s in tokens])
    u, pooled = remove_components(x, 1)
    write_case("bag_vec", dict(base, name="sif_bag_vec",
                               embedding={"kind": "fasttext",
                                          "file": "../../models/sg_d8_vec/vectors.vec"},
                               sif={"counts": "counts.txt",
                                    "components": "components.safetensors"}),
               texts, pooled, u)

    # bilstm: PyTorch's token vectors of the golden bi-LSTM.
    with open(os.path.join(TORCH, "expected.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(TORCH, "config.json")) as f:
        config = json.load(f)
    data = np.fromfile(os.path.join(TORCH, "expected.f32"), dtype="<f4")
    token_dim = manifest["token_dim"]
    cursor, x = 0, []
    for s in manifest["tokens"]:  # all token vectors first, then pooled ones
        v = data[cursor:cursor + len(s) * token_dim].reshape(len(s), token_dim)
        cursor += len(s) * token_dim
        x.append(sif(v.astype(np.float64), s, counts, total, 1e-3))
    u, pooled = remove_components(np.array(x), 1)
    config.update(name="sif_bilstm", pooling="sif",
                  weights="../../torch/fasttext_bilstm_bf16/model.safetensors",
                  sif={"components": "components.safetensors"})
    config["embedding"]["file"] = "../../models/sg_d8/vectors.bin"
    write_case("bilstm", config, manifest["texts"], pooled, u)
    print("wrote", ", ".join(("bag_bin", "bag_vec", "bilstm")))


if __name__ == "__main__":
    sys.exit(main())
