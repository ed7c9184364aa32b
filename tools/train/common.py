"""Shared pieces of the training scripts: data, vocabularies, batching,
sampled softmax, fastText helpers."""
import collections
import json
import os
import random
import struct
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def read_sentences(path, min_len=3, max_len=40):
    with open(path, encoding="utf-8") as f:
        for line in f:
            tokens = line.split()
            if min_len <= len(tokens) <= max_len:
                yield tokens


def build_vocab(sentences, size, specials=("<unk>",)):
    counts = collections.Counter(t for s in sentences for t in s)
    words = list(specials) + [w for w, _ in counts.most_common(size - len(specials))]
    freq = np.array([counts.get(w, 1) for w in words], dtype=np.float64)
    return words, freq


def batches(sentences, batch_size, rng):
    """Length-sorted buckets of sentences, shuffled: little padding."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(chunks)
    for chunk in chunks:
        yield [sentences[i] for i in chunk]


class SampledSoftmax(torch.nn.Module):
    """Softmax over the target and K shared negatives drawn from the unigram
    distribution to the 0.75: cheap on CPU for a 30k-word output."""

    def __init__(self, vocab_size, dim, freq, negatives=1024):
        super().__init__()
        self.out = torch.nn.Embedding(vocab_size, dim)
        torch.nn.init.normal_(self.out.weight, std=0.05)
        self.bias = torch.nn.Parameter(torch.zeros(vocab_size))
        p = freq ** 0.75
        self.register_buffer("probs", torch.tensor(p / p.sum(), dtype=torch.float))
        self.negatives = negatives

    def forward(self, hidden, targets):
        """hidden [N x dim], targets [N] -> mean loss."""
        neg = torch.multinomial(self.probs, self.negatives, replacement=True)
        pos_logit = (hidden * self.out(targets)).sum(1) + self.bias[targets]
        neg_logit = hidden @ self.out(neg).t() + self.bias[neg]
        neg_logit = neg_logit.masked_fill(targets[:, None] == neg[None, :], -1e9)
        logits = torch.cat([pos_logit[:, None], neg_logit], dim=1)
        return torch.nn.functional.cross_entropy(
            logits, torch.zeros(len(targets), dtype=torch.long))


def slim_fasttext(src, dst):
    """Copies a fastText .bin without its output matrix (0 rows): word
    vectors need only the input matrix, and the file halves in size. fastText
    itself still loads the result."""
    with open(src, "rb") as f:
        data = f.read()
    pos = 8  # magic, version
    dim = struct.unpack_from("<i", data, pos)[0]
    pos += 12 * 4 + 8  # Args: 12 int32 and a double
    size, = struct.unpack_from("<i", data, pos)
    pos += 12
    pos += 8  # ntokens
    prune, = struct.unpack_from("<q", data, pos)
    pos += 8
    for _ in range(size):
        pos = data.index(b"\0", pos) + 1 + 8 + 1
    pos += max(prune, 0) * 8
    assert data[pos] == 0, "quantized models are not supported"
    rows, cols = struct.unpack_from("<qq", data, pos + 1)
    end = pos + 1 + 16 + rows * cols * 4
    with open(dst, "wb") as f:
        f.write(data[:end])
        f.write(b"\0" + struct.pack("<qq", 0, dim))


class Timer:
    def __init__(self, minutes):
        self.start = time.time()
        self.limit = minutes * 60

    def elapsed(self):
        return time.time() - self.start

    def done(self):
        return self.elapsed() >= self.limit


def train(sentences, batch_size, seed, minutes, params, loss_fn, log_path):
    """Adam over `params`, minimising loss_fn(batch of sentences), batch after
    length-bucketed batch, epoch after epoch, until `minutes` have passed.
    Logs every 200 steps to `log_path`; returns a summary dict."""
    opt = torch.optim.Adam(params, lr=2e-3)
    rng = random.Random(seed)
    timer = Timer(minutes)
    step, epoch, loss = 0, 0, float("nan")
    while not timer.done():
        for batch in batches(sentences, batch_size, rng):
            loss = loss_fn(batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            if step % 200 == 0:
                write_log(log_path, {"step": step, "epoch": epoch,
                                     "loss": float(loss),
                                     "minutes": timer.elapsed() / 60})
            if timer.done():
                break
        epoch += 1
    return {"minutes": timer.elapsed() / 60, "steps": step, "epochs": epoch,
            "sentences": len(sentences), "final_loss": float(loss),
            "batch": batch_size, "seed": seed}


def write_log(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
