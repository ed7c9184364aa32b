#!/usr/bin/python3
"""Encoder 3: fastText word vectors -> bi-LSTM with its input concatenated
to its states -> SIF pooling -> linear projection, trained for sentence
similarity.

The word vectors are carried into the sentence vector by a dense skip
(--skip concat, the default): a token's vector is its word vector followed
by the bi-LSTM's states around it (config.json: "concat_input"). The LSTM
starts at PyTorch's initialisation and the projection reads only the word
vectors' rows, so the untrained model is SIF over the word vectors while
the states already carry context, and training moves away from SIF only as
far as the development score rewards. (--skip residual adds the states to
the word vectors instead, the LSTM starting near zero: the previous default;
at equal steps it scored lower on STS-B dev.) The word vectors train too (their own
learning rate, --vector_lr; 0 freezes them): a token's vector is the mean of
its fastText input-matrix rows (the word's and its character n-grams'), and
the tuned matrix is written back into the model's fastText .bin, which the
server (and fastText) read as any other.

Objectives, alternated step by step:
- CoSENT (Su 2022) on the STS Benchmark train split: a ranking loss that asks
  the cosine of every pair to order the pairs as the human scores do.
- In-batch contrastive (InfoNCE, scale 20) on Debian paraphrase pairs
  (corpus/pairs.tsv: GCIDE vs WordNet definitions of one-sense words, WordNet
  examples with a synonym swapped in) and WordNet "what is X" -> definition
  pairs of the train split, with each positive's word-order scramble as an
  extra negative, so that order changes the vector. The FAQ pairs are never
  trained on.
- Order, in a second phase (--order_minutes, off by default; run.sh turns
  it on): from the first phase's chosen weights, sentences of the training
  text (corpus/train.txt, --order_sentences of them) and the same words with
  two swapped must have a cosine below --order_margin, on top of the other
  objectives. That phase keeps the best STS-B dev checkpoint among those
  whose mean order cosine on 300 other training-text sentences (held aside
  from the loss) is at most --order_target. Order and similarity pull
  against each other: from the 25-minute model (dev 0.8117, held-out order
  0.977), weight 3 moved held-out order by about -0.0023 and dev by -0.0006
  per 200 steps, and the check chosen (order 0.945 on the held-aside
  sentences) came at step 3,200 with dev 0.8014; with the loss on from the
  start (weight 3) dev peaked at 79.3.
  The order cosine of the paraphrase pairs' own sentences (short
  definitions; logged as "pairs_order") falls much faster than the
  held-out text's: SIF pooling averages a swap's local change over the
  whole sentence.
- Word in context (--wic_weight): WordNet example sentences of the train
  split's words (corpus/wic.tsv; the evaluation uses the other words): a
  word's token vector must be nearer the same word in an example of the
  same sense than in one of another sense (logistic loss on the cosines).

Every check also reports, never to choose, the quality report's held-out
order cosine and word-in-context AUC.

The model saved is an exponential moving average of the weights (--ema),
at the check (every --eval_every steps) with the best STS-B dev Spearman:
train on train, choose on dev. SIF's own dev score (a chosen from three on
dev, one common component from the training sentences, fixed for training)
is recorded beside.

Usage: train_sim.py CORPUS_DIR FASTTEXT_BIN STSB_DIR OUT_DIR [--minutes 25]
         [--order_minutes M] [--init MODEL_DIR]
(--init continues from a model directory this script wrote, with its
vectors.bin as FASTTEXT_BIN: e.g. only the order phase, --minutes 0.)
Writes OUT_DIR/{config.json, model.safetensors, vectors.bin,
sif_components.safetensors, training.json}.
"""
import argparse
import json
import os
import random
import sys
import time

# OpenBLAS threads on top of torch's own oversubscribe the cores: a
# training step then takes about four times as long. (Set before numpy and
# torch load OpenBLAS.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from common import slim_fasttext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import export_torch  # noqa: E402
from torch_encoder import tokenize  # noqa: E402
from eval.evaluate import auc, order_pairs, read_stsb, spearman, wic_pairs  # noqa: E402

PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


class Vocab:
    """Every token the training and selection data use, with its fastText
    vector (subwords included, as the server computes it) and SIF weight."""

    def __init__(self, ft, token_lists, a):
        words, freqs = ft.get_words(include_freq=True)
        counts = dict(zip(words, (int(c) for c in freqs)))
        total = float(sum(counts.values()))
        self.ids = {"<pad>": 0}
        for tokens in token_lists:
            for t in tokens:
                self.ids.setdefault(t, len(self.ids))
        vectors = np.zeros((len(self.ids), ft.get_dimension()), np.float32)
        self.count = np.zeros(len(self.ids))
        # The input-matrix rows fastText averages into each token's vector.
        self.subwords = [np.zeros(0, np.int64)]
        for t, i in self.ids.items():
            if i:
                vectors[i] = ft.get_word_vector(t)
                self.count[i] = counts.get(t, 0)
                self.subwords.append(np.asarray(ft.get_subwords(t)[1], np.int64))
        self.vectors = torch.from_numpy(vectors)
        self.total = total
        self.set_a(a)

    def set_a(self, a):
        self.a = a
        w = a / (a + self.count / self.total)
        w[0] = 0.0  # padding
        self.weights = torch.tensor(w, dtype=torch.float32)

    def encode(self, token_lists):
        lengths = [max(1, len(t)) for t in token_lists]
        ids = torch.zeros(len(token_lists), max(lengths), dtype=torch.long)
        for i, tokens in enumerate(token_lists):
            ids[i, :len(tokens)] = torch.tensor([self.ids[t] for t in tokens],
                                                dtype=torch.long)
        return ids, torch.tensor([len(t) for t in token_lists])


class SimEncoder(nn.Module):
    """The served computation, batched: parameters named as config.json
    names them (rnn.*, proj.*)."""

    def __init__(self, vocab, hidden, layers=1, input_matrix=None,
                 skip="residual"):
        super().__init__()
        dim = vocab.vectors.shape[1]
        self.skip = skip
        token_dim = dim if skip == "residual" else dim + 2 * hidden
        self.embed = nn.Embedding.from_pretrained(vocab.vectors, freeze=True)
        # With an input matrix, the word vectors are trained too: a token's
        # vector is the mean of its rows, as fastText (and ctxembed) compute
        # it from the .bin this model will be saved with.
        self.vocab = vocab
        self.rows = None
        if input_matrix is not None:
            self.rows = nn.Parameter(torch.from_numpy(input_matrix.copy()))
        self.register_buffer("sif_weights", vocab.weights.clone())
        self.rnn = nn.LSTM(dim, hidden, num_layers=layers, bidirectional=True,
                           batch_first=True)
        self.proj = nn.Linear(token_dim, token_dim)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(token_dim))
            self.proj.bias.zero_()
            if skip == "residual":
                # The LSTM starts near zero: the sum is the word vector.
                for p in self.rnn.parameters():
                    p.uniform_(-0.02, 0.02)
            else:
                # PyTorch's own initialisation, and a projection that starts
                # by reading the word vectors' rows only: the sentence vector
                # starts as SIF, while the states already carry context.
                self.proj.weight[dim:, dim:] = 0.0
        self.register_buffer("components", torch.zeros(0, token_dim))

    def word_vectors(self, ids):
        if self.rows is None:
            return self.embed(ids)
        uniq, inverse = torch.unique(ids, return_inverse=True)
        lists = [self.vocab.subwords[i] for i in uniq.tolist()]
        offsets = torch.tensor(np.cumsum([0] + [len(l) for l in lists[:-1]]))
        flat = torch.from_numpy(np.concatenate(lists))
        vectors = F.embedding_bag(flat, self.rows, offsets, mode="mean")
        return vectors[inverse]

    def tokens(self, ids, lengths):
        x = self.word_vectors(ids)
        packed = pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True,
                                     total_length=ids.shape[1])
        if self.skip == "concat":
            return torch.cat([x, out], dim=2)
        return x + out  # residual

    def pooled(self, ids, lengths):
        """SIF: (1/n) sum_t w_t x_t, then the common components removed."""
        t = self.tokens(ids, lengths)
        w = self.sif_weights[ids]  # 0 on padding
        p = (w.unsqueeze(2) * t).sum(1) / lengths.clamp(min=1).unsqueeze(1).float()
        if len(self.components):
            p = p - (p @ self.components.t()) @ self.components
        return p

    def forward(self, ids, lengths):
        return F.normalize(self.proj(self.pooled(ids, lengths)), dim=1)


def scramble(tokens, rng):
    """The same words in another order: two content words swapped."""
    content = [i for i, w in enumerate(tokens) if w.isalpha() and len(w) > 2]
    if len(content) < 2:
        return None
    i, j = rng.sample(content, 2)
    if tokens[i] == tokens[j]:
        return None
    out = list(tokens)
    out[i], out[j] = out[j], out[i]
    return out


def cosent(cos, scores, scale=20.0):
    diff = scale * (cos[None, :] - cos[:, None])  # [i, j] = cos_j - cos_i
    mask = scores[:, None] > scores[None, :]       # pairs with s_i > s_j
    diff = diff[mask]
    return torch.logsumexp(torch.cat([torch.zeros(1), diff]), dim=0)


def contrastive(u, v, hard, scale=20.0):
    logits = scale * torch.cat([u @ v.t(), u @ hard.t()], dim=1)
    return F.cross_entropy(logits, torch.arange(len(u)))


def embed_all(model, vocab, token_lists, batch=256):
    out = []
    with torch.no_grad():
        for i in range(0, len(token_lists), batch):
            ids, lengths = vocab.encode(token_lists[i:i + batch])
            out.append(model(ids, lengths))
    return torch.cat(out).numpy()


def dev_score(model, vocab, dev):
    a = embed_all(model, vocab, [p[0] for p in dev])
    b = embed_all(model, vocab, [p[1] for p in dev])
    return spearman((a * b).sum(1), [p[2] for p in dev])


def set_components(model, vocab, sentences, k=1):
    """The top k right singular vectors of the pooled training sentences."""
    with torch.no_grad():
        model.components = torch.zeros(0, model.components.shape[1])
        pooled = []
        for i in range(0, len(sentences), 512):
            ids, lengths = vocab.encode(sentences[i:i + 512])
            pooled.append(model.pooled(ids, lengths))
        _, _, vt = torch.linalg.svd(torch.cat(pooled).double(), full_matrices=False)
        model.components = vt[:k].float()


def load_wic(corpus, tok):
    """{word: [[tokens of each example] per sense]} for train-split words
    with two senses or more and some sense with two examples or more."""
    senses = {}
    with open(os.path.join(corpus, "wic.tsv"), encoding="utf-8") as f:
        for line in f:
            word, sense, example, split = line.rstrip("\n").split("\t")
            tokens = tok(example)
            if split == "train" and word in tokens and len(tokens) <= 60:
                senses.setdefault(word, {}).setdefault(sense, []).append(tokens)
    out = {}
    for word, by_sense in senses.items():
        lists = list(by_sense.values())
        if len(lists) >= 2 and any(len(l) >= 2 for l in lists):
            out[word] = lists
    return out


def wic_triplets(wic, words, n, rng):
    """(word, anchor, same sense, other sense) example token lists."""
    out = []
    for word in rng.sample(words, n):
        lists = wic[word]
        sense = rng.choice([l for l in lists if len(l) >= 2])
        anchor, positive = rng.sample(sense, 2)
        negative = rng.choice(rng.choice([l for l in lists if l is not sense]))
        out.append((word, anchor, positive, negative))
    return out


def word_in_context_loss(model, vocab, triplets, scale=10.0):
    sentences = [t for _, a, p, n in triplets for t in (a, p, n)]
    ids, lengths = vocab.encode(sentences)
    tokens = model.tokens(ids, lengths)
    rows = [3 * i + k for i in range(len(triplets)) for k in range(3)]
    cols = [s.index(w) for (w, a, p, n) in triplets for s in (a, p, n)]
    v = F.normalize(tokens[rows, cols], dim=1).view(len(triplets), 3, -1)
    same = (v[:, 0] * v[:, 1]).sum(1)
    other = (v[:, 0] * v[:, 2]).sum(1)
    return F.softplus(scale * (other - same)).mean()


def held_out_probes(corpus, tok):
    """The quality report's order pairs and word-in-context pairs (the
    held-out split: never trained on), tokenized; reported, never used to
    choose."""
    rng = random.Random(1)
    with open(os.path.join(corpus, "test.txt"), encoding="utf-8") as f:
        test = [l.strip() for l in f if l.strip()]
    # The report draws its question-answer sample first from the same
    # generator; the order pairs differ from its own but are drawn alike.
    orders = [(tok(a), tok(b)) for a, b in order_pairs(test, rng)]
    same, diff = wic_pairs(corpus, rng)
    wic = [(w, tok(a), tok(b), label) for label, pairs in ((1, same), (0, diff))
           for w, a, b in pairs]
    wic = [p for p in wic if p[0] in p[1] and p[0] in p[2]]
    return orders, wic


def probe_scores(model, vocab, orders, wic):
    """Mean order cosine of the sentence vectors; word-in-context AUC of
    the token vectors' cosines."""
    with torch.no_grad():
        a = embed_all(model, vocab, [p[0] for p in orders])
        b = embed_all(model, vocab, [p[1] for p in orders])
        order = float((a * b).sum(1).mean())
        cosines = {0: [], 1: []}
        for i in range(0, len(wic), 128):
            chunk = wic[i:i + 128]
            sents = [s for p in chunk for s in p[1:3]]
            ids, lengths = vocab.encode(sents)
            t = model.tokens(ids, lengths)
            for j, (w, x, y, label) in enumerate(chunk):
                u, v = t[2 * j, x.index(w)], t[2 * j + 1, y.index(w)]
                cosines[label].append(round(float(F.cosine_similarity(u, v, dim=0)), 6))
    return order, auc(cosines[1], cosines[0]) if wic else 0.5


def load_order_text(corpus, n, rng, n_dev=300):
    """n sentences of 6 to 30 words of the training text (corpus/train.txt,
    the held-out text's kind) for the order loss, and n_dev other ones,
    each with two words swapped, whose mean cosine chooses among the order
    phase's checkpoints (the held-out text is never used to choose)."""
    with open(os.path.join(corpus, "train.txt"), encoding="utf-8") as f:
        lines = [l.split() for l in f]
    lines = [t for t in lines if 6 <= len(t) <= 30]
    lines = rng.sample(lines, min(n + 3 * n_dev, len(lines)))
    dev = []
    for t in lines[n:]:
        u = scramble(t, rng)
        if u is not None and len(dev) < n_dev:
            dev.append((t, u))
    return lines[:n], dev


def warm_start(model, vocab, init_dir):
    """The weights, SIF a and common components of a model directory this
    script wrote (its vectors.bin is the fastText file to pass)."""
    with open(os.path.join(init_dir, "config.json")) as f:
        config = json.load(f)
    tensors = export_torch.load_safetensors(os.path.join(init_dir, config["weights"]))
    model.load_state_dict(tensors, strict=False)
    vocab.set_a(config["sif"]["a"])
    with torch.no_grad():
        model.sif_weights.copy_(vocab.weights)
        model.components = export_torch.load_safetensors(
            os.path.join(init_dir, config["sif"]["components"]))["components"]
    return config["sif"]["a"]


def load_pairs(corpus):
    pairs = []
    with open(os.path.join(corpus, "pairs.tsv"), encoding="utf-8") as f:
        for line in f:
            a, b, _ = line.rstrip("\n").split("\t")
            pairs.append((a.split(), b.split()))
    with open(os.path.join(corpus, "qa.tsv"), encoding="utf-8") as f:
        for line in f:
            q, a, src, split = line.rstrip("\n").split("\t")
            if src == "wordnet" and split == "train":
                pairs.append((q.split(), a.split()))
    return [(a, b) for a, b in pairs if 0 < len(a) <= 60 and 0 < len(b) <= 60]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("fasttext_bin")
    ap.add_argument("stsb")
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=25)
    ap.add_argument("--hidden", type=int, default=100,
                    help="per direction; with --skip residual, 2 x hidden "
                    "must equal the word vectors' size")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--skip", choices=("residual", "concat"), default="concat",
                    help="how the word vectors reach the token vectors: "
                    "added to the bi-LSTM's output, or beside it")
    ap.add_argument("--pair_weight", type=float, default=0.3,
                    help="weight of the contrastive loss beside CoSENT")
    ap.add_argument("--vector_lr", type=float, default=5e-4,
                    help="learning rate of the fastText input matrix (word "
                    "and n-gram rows); 0 keeps the word vectors frozen")
    ap.add_argument("--order_minutes", type=float, default=0,
                    help="minutes of a second phase, from the first phase's "
                    "chosen weights, with the order loss on")
    ap.add_argument("--order_weight", type=float, default=1.0)
    ap.add_argument("--order_margin", type=float, default=0.8)
    ap.add_argument("--order_target", type=float, default=0.95,
                    help="the order phase keeps the best STS-B dev checkpoint "
                    "whose order cosine on held-aside training sentences is "
                    "at most this")
    ap.add_argument("--order_lr", type=float, default=1e-3)
    ap.add_argument("--order_sentences", type=int, default=50000,
                    help="sentences of the training text the order loss "
                    "scrambles")
    ap.add_argument("--wic_weight", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval_every", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999,
                    help="decay of the exponential moving average of the "
                    "weights that is evaluated and saved (0: the raw weights)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--init", metavar="MODEL_DIR",
                    help="start from a model directory this script wrote "
                    "(pass its vectors.bin as FASTTEXT_BIN)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "2")))
    rng = random.Random(args.seed)
    import fasttext
    ft = fasttext.load_model(args.fasttext_bin)

    def tok(text):
        return tokenize(text, "words_and_punct", lowercase=True)
    train = [(tok(a), tok(b), s) for a, b, s in
             read_stsb("train", args.stsb)]
    dev = [(tok(a), tok(b), s) for a, b, s in
           read_stsb("dev", args.stsb)]
    pairs = load_pairs(args.corpus)
    wic = load_wic(args.corpus, tok)
    wic_words = sorted(wic)
    args.wic_train_words = len(wic_words)
    orders, wic_test = held_out_probes(args.corpus, tok)
    # Read (and added to the vocabulary) only when the order phase runs.
    order_text, order_dev = (
        load_order_text(args.corpus, args.order_sentences, rng)
        if args.order_minutes > 0 else ([], []))
    vocab = Vocab(ft, [t for p in train + dev for t in p[:2]] +
                  [t for p in orders for t in p] + order_text +
                  [t for p in order_dev for t in p] +
                  [t for p in wic_test for t in p[1:3]] +
                  [t for p in pairs for t in p] +
                  [t for lists in wic.values() for l in lists for t in l], 1e-3)
    model = SimEncoder(vocab, args.hidden, args.layers,
                       ft.get_input_matrix() if args.vector_lr > 0 else None,
                       args.skip)
    train_sentences = [t for p in train for t in p[:2] if t]
    component_sentences = train_sentences + [
        t for p in rng.sample(pairs, min(20000, len(pairs))) for t in p]

    # SIF itself, a chosen on dev: the baseline the encoder must beat, and
    # the weights it starts from.
    sif = {}
    plain = SimEncoder(vocab, args.hidden, args.layers, skip=args.skip)
    with torch.no_grad():
        for p in plain.rnn.parameters():
            p.zero_()
    for a in (1e-3, 3e-4, 1e-4):
        vocab.set_a(a)
        plain.sif_weights.copy_(vocab.weights)
        set_components(plain, vocab, component_sentences)
        sif[a] = dev_score(plain, vocab, dev)
    best_a = max(sif, key=sif.get)
    if args.init:
        best_a = warm_start(model, vocab, args.init)
    else:
        vocab.set_a(best_a)
        model.sif_weights.copy_(vocab.weights)
        set_components(model, vocab, component_sentences)
    print("SIF dev spearman by a:", {str(k): round(v, 4) for k, v in sif.items()},
          "-> a =", best_a, flush=True)

    def optimizer(lr):
        groups = [{"params": list(model.rnn.parameters()) +
                   list(model.proj.parameters())}]
        if model.rows is not None:
            groups.append({"params": [model.rows], "lr": args.vector_lr})
        return torch.optim.Adam(groups, lr=lr)

    # The average of recent weights generalises better than the last step's
    # and is what is evaluated and kept.
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    train_orders = []  # the pairs' first sentences, two words swapped
    for a, _ in rng.sample(pairs, 2000):
        s = scramble(a, rng)
        if s is not None and len(train_orders) < 300:
            train_orders.append((a, s))
    order, wic_auc = probe_scores(model, vocab, orders, wic_test)
    start = time.time()
    state = {"step": 0, "log": []}

    def train_phase(minutes, lr, order_weight, chosen):
        """Trains for `minutes` from the current weights; every
        --eval_every steps the weights' moving average is checked, and the
        one with the best STS-B dev score among those `chosen(check)`
        accepts is loaded at the end: (dev, step), or None if no check was
        accepted (the weights are then put back as they were)."""
        opt = optimizer(lr)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        ema = {n: model.state_dict()[n].clone() for n in trained}
        best, best_state = None, None
        phase_start = time.time()
        while time.time() - phase_start < minutes * 60:
            state["step"] += 1
            step = state["step"]
            model.train()
            batch = rng.sample(train, args.batch)
            ids_a, len_a = vocab.encode([p[0] or ["."] for p in batch])
            ids_b, len_b = vocab.encode([p[1] or ["."] for p in batch])
            cos = (model(ids_a, len_a) * model(ids_b, len_b)).sum(1)
            loss = cosent(cos, torch.tensor([p[2] for p in batch]))
            batch = rng.sample(pairs, args.batch)
            hard = [scramble(b, rng) or b for _, b in batch]
            ids_a, len_a = vocab.encode([p[0] for p in batch])
            ids_b, len_b = vocab.encode([p[1] for p in batch])
            ids_h, len_h = vocab.encode(hard)
            u, v, h = model(ids_a, len_a), model(ids_b, len_b), model(ids_h, len_h)
            # A scramble identical to its positive (nothing to swap) is no negative.
            same = torch.tensor([hard[i] == batch[i][1] for i in range(len(batch))])
            h = torch.where(same[:, None], -u, h)
            loss = loss + args.pair_weight * contrastive(u, v, h)
            if order_weight > 0:
                originals = rng.sample(order_text, args.batch // 2)
                scrambled = [scramble(s, rng) for s in originals]
                keep = [i for i, s in enumerate(scrambled) if s is not None]
                if keep:
                    ids_o, len_o = vocab.encode([originals[i] for i in keep])
                    ids_s, len_s = vocab.encode([scrambled[i] for i in keep])
                    order_cos = (model(ids_o, len_o) * model(ids_s, len_s)).sum(1)
                    loss = loss + order_weight * F.relu(
                        order_cos - args.order_margin).mean()
            if args.wic_weight > 0:
                loss = loss + args.wic_weight * word_in_context_loss(
                    model, vocab, wic_triplets(wic, wic_words, args.batch // 2, rng))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in ema:
                        ema[n].mul_(args.ema).add_(p, alpha=1 - args.ema)
            if step % args.eval_every == 0:
                model.eval()
                raw = {n: p.detach().clone() for n, p in model.named_parameters()
                       if n in ema}
                model.load_state_dict(ema, strict=False)
                check = {"step": step, "seconds": round(time.time() - start, 1),
                         "loss": round(float(loss), 4),
                         "dev": round(dev_score(model, vocab, dev), 4)}
                check["order"], check["wic"] = (
                    round(x, 4) for x in probe_scores(model, vocab, orders, wic_test))
                check["pairs_order"] = round(
                    probe_scores(model, vocab, train_orders, [])[0], 4)
                if order_dev:
                    check["order_dev"] = round(
                        probe_scores(model, vocab, order_dev, [])[0], 4)
                state["log"].append(check)
                print(" ".join("%s %s" % kv for kv in check.items()), flush=True)
                if chosen(check) and (best is None or check["dev"] > best[0]):
                    best = (check["dev"], step)
                    best_state = {k: v.clone() for k, v in model.state_dict().items()}
                model.load_state_dict(raw, strict=False)
        model.load_state_dict(before if best is None else best_state)
        return best

    best = (dev_score(model, vocab, dev), 0)
    print("step 0 dev %.4f (held out: order %.4f wic %.4f)"
          % (best[0], order, wic_auc), flush=True)
    # A check must beat the starting weights (else train_phase restores them).
    first = train_phase(args.minutes, args.lr, 0.0,
                        lambda check: check["dev"] > best[0])
    if first is not None:
        best = first
    if args.order_minutes > 0:
        second = train_phase(
            args.order_minutes, args.order_lr, args.order_weight,
            lambda check: check["order_dev"] <= args.order_target)
        if second is None:
            print("warning: no check of the order phase reached order cosine "
                  "%.3f on the held-aside training sentences; the first "
                  "phase's weights are kept" % args.order_target, flush=True)
        else:
            best = second
    step, log = state["step"], state["log"]
    save(model, vocab, args, best, sif, best_a, step, time.time() - start, log)


def save(model, vocab, args, best, sif, a, steps, seconds, log):
    os.makedirs(args.out, exist_ok=True)
    hidden = args.hidden
    dim = model.embed.embedding_dim
    config = {"ctxembed_format": 1, "name": "ctx-sif-bilstm", "max_tokens": 256,
              "tokenizer": {"kind": "words_and_punct", "lowercase": True},
              "embedding": {"kind": "fasttext", "file": "vectors.bin"},
              "encoder": [{"kind": "lstm", "prefix": "rnn", "input_size": dim,
                           "hidden_size": hidden, "num_layers": args.layers,
                           "bidirectional": True,
                           "residual": args.skip == "residual",
                           "concat_input": args.skip == "concat"}],
              "pooling": "sif",
              "sif": {"a": a, "components": "sif_components.safetensors"},
              "projection": {"prefix": "proj"}, "normalize": True}
    state = {k: v for k, v in model.state_dict().items()
             if k.startswith(("rnn.", "proj."))}
    export_torch.export_model(args.out, config, state)
    export_torch.save_safetensors(
        os.path.join(args.out, "sif_components.safetensors"),
        {"components": model.components})
    slim_fasttext(args.fasttext_bin, os.path.join(args.out, "vectors.bin"),
                  None if model.rows is None else model.rows.detach().numpy())
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump({"minutes": seconds / 60, "steps": steps,
                   "best_step": best[1], "dev_spearman": best[0],
                   "sif_dev_spearman_by_a": {str(k): v for k, v in sif.items()},
                   "sif_a": a, "hidden": hidden, "layers": args.layers,
                   "skip": args.skip,
                   "pair_weight": args.pair_weight, "vector_lr": args.vector_lr,
                   "ema": args.ema, "init": args.init,
                   "order_minutes": args.order_minutes,
                   "order_weight": args.order_weight,
                   "order_margin": args.order_margin,
                   "order_target": args.order_target, "order_lr": args.order_lr,
                   "wic_weight": args.wic_weight,
                   "wic_train_words": args.wic_train_words,
                   "batch": args.batch,
                   "lr": args.lr, "seed": args.seed, "log": log}, f, indent=1)
    print("best dev %.4f at step %d; saved %s" % (best[0], best[1], args.out))


if __name__ == "__main__":
    main()
