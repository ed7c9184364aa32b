#!/usr/bin/python3
"""Computes the common components that SIF pooling removes, for a model
directory, from a corpus, and records them in the model's config.json.

SIF (Arora, Liang and Ma 2017) removes from each sentence vector its
projection on the first principal components of many sentence vectors: the
direction all sentences share (frequent words, syntax), which carries little
of what tells them apart. This tool embeds the corpus with the model's own
SIF pooling as ctxembed serves it (`ctxembed-cli embed --local --pooling sif`,
with any components already configured left out), takes the top K right
singular vectors of those vectors (uncentred, as the paper does), and writes

  MODEL_DIR/sif_components.safetensors   tensor "components" [K x token size]
  MODEL_DIR/config.json                  "sif": {"components": ...} added

Usage:
  tools/sif_components.py MODEL_DIR CORPUS.txt [--k 1] [--max_sentences 20000]
                          [--pooling] [--cli build/tools/ctxembed-cli]

CORPUS.txt has one sentence per line, text the model will see in service.
--pooling also makes "sif" the model's default pooling. The model's word
vectors must record counts (a fastText .bin) or its config must name a
counts file ("sif": {"counts": "counts.txt"}, lines "word count").
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch import save_safetensors  # noqa: E402


def absolute_paths(config, model_dir):
    """config.json with every file it names made absolute and no
    components, so that a copy elsewhere loads the same files."""
    def fix(tower):
        emb = tower["embedding"]
        for key in ("file", "vocab"):
            if key in emb:
                emb[key] = os.path.join(model_dir, emb[key])
        if "sif" in tower:
            tower["sif"].pop("components", None)
            if "counts" in tower["sif"]:
                tower["sif"]["counts"] = os.path.join(model_dir, tower["sif"]["counts"])
    config = json.loads(json.dumps(config))
    config["weights"] = os.path.join(model_dir, config.get("weights", "model.safetensors"))
    fix(config)  # single-tower models only (main refuses dual encoders)
    return config


def embed(cli, model_dir, sentences):
    p = subprocess.run([cli, "embed", "--local", "--model_dir=" + model_dir,
                        "--pooling=sif", "--truncate"],
                       input="\n".join(sentences) + "\n", capture_output=True,
                       text=True)
    if p.returncode != 0:
        sys.exit("sif_components: %s failed: %s" % (cli, p.stderr.strip()))
    return np.array([json.loads(line)["embedding"]
                     for line in p.stdout.splitlines()], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("corpus")
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--max_sentences", type=int, default=20000)
    ap.add_argument("--pooling", action="store_true")
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "tools", "ctxembed-cli"))
    args = ap.parse_args()
    model_dir = os.path.abspath(args.model_dir)
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    if "towers" in config:
        sys.exit("sif_components: dual encoders are not supported")
    with open(args.corpus, encoding="utf-8") as f:
        sentences = [l.strip() for l in f if l.strip()]
    random.Random(1).shuffle(sentences)
    sentences = sentences[:args.max_sentences]
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(absolute_paths(config, model_dir), f)
        x = embed(args.cli, tmp, sentences)
    x = x[np.linalg.norm(x, axis=1) > 0]
    if len(x) < args.k:
        sys.exit("sif_components: the corpus gives %d non-empty sentences; "
                 "need at least %d" % (len(x), args.k))
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    components = vt[:args.k]
    import torch
    save_safetensors(os.path.join(model_dir, "sif_components.safetensors"),
                     {"components": torch.from_numpy(components.astype(np.float32))})
    config.setdefault("sif", {})["components"] = "sif_components.safetensors"
    if args.pooling:
        config["pooling"] = "sif"
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    share = (s[:args.k] ** 2).sum() / (s ** 2).sum()
    print("sif_components: %d components from %d sentences (%.1f%% of the "
          "energy) -> %s" % (args.k, len(x), 100 * share,
                             os.path.join(model_dir, "sif_components.safetensors")))


if __name__ == "__main__":
    main()
