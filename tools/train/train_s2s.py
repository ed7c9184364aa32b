#!/usr/bin/python3
"""Encoder 2, "seq2seq": an RNN encoder-decoder in Sockeye's layout (a
bidirectional first layer of hidden/2 per direction, then a unidirectional
layer with a residual connection) over a learned embedding table, trained
as a denoising autoencoder: the input is a sentence with 15% of its words
dropped and neighbours swapped, the target the original sentence. The
decoder (an LSTM, sampled softmax) sees only the encoder's mean-pooled
vector, so that vector must carry the sentence's words and their order.
Only the encoder is exported.

Usage: train_s2s.py CORPUS_DIR OUT_DIR [--minutes 15]
"""
import argparse
import json
import os
import random

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import common
import export_torch
from torch_encoder import TorchEncoder


def noisy(tokens, rng):
    kept = [t for t in tokens if rng.random() > 0.15] or tokens[:1]
    for i in range(len(kept) - 1):
        if rng.random() < 0.1:
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return kept


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    common.set_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "2")))
    sentences = list(common.read_sentences(os.path.join(args.corpus, "train.txt"),
                                           4, 30))
    random.Random(args.seed).shuffle(sentences)
    vocab, freq = common.build_vocab(sentences, 30000)
    ids = {w: i for i, w in enumerate(vocab)}
    h = args.hidden
    config = {
        "name": "s2s-encoder", "max_tokens": 256,
        "tokenizer": {"kind": "words_and_punct", "lowercase": True},
        "embedding": {"kind": "table", "tensor": "encoder.embed.weight",
                      "vocab": "vocab.txt", "unk_token": "<unk>"},
        "encoder": [
            {"kind": "lstm", "prefix": "encoder.bi", "input_size": args.dim,
             "hidden_size": h // 2, "num_layers": 1, "bidirectional": True,
             "residual": False},
            {"kind": "lstm", "prefix": "encoder.uni1", "input_size": h,
             "hidden_size": h, "num_layers": 1, "bidirectional": False,
             "residual": True}],
        "pooling": "mean"}
    enc = TorchEncoder(config, vocab=vocab, embedding_dim=args.dim)
    dec_embed = nn.Embedding(len(vocab) + 1, args.dim)  # + <s>
    bos = len(vocab)
    init = nn.Linear(h, 2 * h)
    decoder = nn.LSTM(args.dim, h, batch_first=True)
    softmax = common.SampledSoftmax(len(vocab), h, freq)
    params = (list(enc.parameters()) + list(dec_embed.parameters()) +
              list(init.parameters()) + list(decoder.parameters()) +
              list(softmax.parameters()))
    rng = random.Random(args.seed)

    def loss_fn(batch):
        inputs = [noisy(s, rng) for s in batch]
        _, pooled = enc.encode(inputs)
        state = torch.tanh(init(pooled)).view(len(batch), 2, h)
        h0 = state[:, 0].unsqueeze(0).contiguous()
        c0 = state[:, 1].unsqueeze(0).contiguous()
        targets = [torch.tensor([ids.get(t, 0) for t in s]) for s in batch]
        dec_in = [torch.cat([torch.tensor([bos]), t[:-1]]) for t in targets]
        lengths = torch.tensor([len(t) for t in targets])
        x = dec_embed(nn.utils.rnn.pad_sequence(dec_in, batch_first=True))
        out, _ = decoder(pack_padded_sequence(x, lengths, batch_first=True,
                                              enforce_sorted=False), (h0, c0))
        out, _ = pad_packed_sequence(out, batch_first=True)
        hs = torch.cat([out[i, :len(t)] for i, t in enumerate(targets)])
        return softmax(hs, torch.cat(targets))

    summary = common.train(sentences, args.batch, args.seed, args.minutes,
                           params, loss_fn, args.out + ".log.jsonl")
    export_torch.export_model(args.out, config, enc.state_dict(), vocab=vocab,
                              dtype="f16")
    summary.update(dim=args.dim, hidden=h)
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("encoder 2 exported to %s: %s" % (args.out, json.dumps(summary)))


if __name__ == "__main__":
    main()
