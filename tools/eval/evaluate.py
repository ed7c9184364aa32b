#!/usr/bin/python3
"""Quality report: bags of vectors vs the contextual encoders, through the
gRPC API of a running server. Writes quality.json and quality_table.md.

Measures, per model:
0. Sentence similarity: STS Benchmark dev split, Spearman x 100 of the
   cosine against the human score; paraphrase retrieval within it: each
   first sentence of a pair scored >= 4 finds its second sentence among
   all those pairs' second sentences (recall@1).
1. Word similarity of the word-vector layer: WordSim353 and SimLex-999
   Spearman (../shared/data/eval), from one-word EmbedTokens calls.
2. Order: pairs of sentences with the same words in another order; mean
   cosine (a bag of vectors gives exactly 1).
3. Word in context: pairs of WordNet example sentences sharing a word in
   the same sense or in different senses, words of the held-out split only;
   ROC AUC of the cosine of that word's token vectors (a static vector
   gives 0.5).
4. Questions vs answers: 5-fold cross-validated logistic regression on
   sentence vectors, punctuation removed and case folded; accuracy.
5. Retrieval: held-out questions, recall@1 and @10 of their own answer
   among all answers, by cosine; and recall@10 of the FAQ questions alone
   (perlfaq, Python FAQ: never trained on) among the FAQ answers.

Usage: evaluate.py --server 127.0.0.1:50051 --corpus var/train/corpus \
         --models bag=ft-bag,sif=sif-bag,enc3=ctx-sif-bilstm \
         --word_models bag=ft-bag,sif=ft-bag,enc3=ft-bag [--out DIR]
"""
import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("CTXEMBED_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
# Published STS-B test-split Spearman x 100 (Reimers and Gurevych 2019,
# Table 1): for scale, not measured here, and on the test split.
PUBLISHED = [("mean GloVe", 58.02), ("InferSent (GloVe)", 68.03),
             ("Universal Sentence Encoder", 74.92)]
PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def stubs():
    gen = tempfile.mkdtemp(prefix="ctxembed_eval_")
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"),
                    "--python_out", gen, "--grpc_out", gen,
                    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                    "ctxembed/v1/embedder.proto"], check=True)
    sys.path.insert(0, gen)
    import grpc
    from ctxembed.v1 import embedder_pb2, embedder_pb2_grpc
    return grpc, embedder_pb2, embedder_pb2_grpc


class Client:
    def __init__(self, address):
        grpc, self.pb, rpc = stubs()
        channel = grpc.insecure_channel(address, options=[
            ("grpc.max_receive_message_length", 64 << 20)])
        self.stub = rpc.EmbedderStub(channel)

    def embed(self, model, texts, batch=128):
        out = []
        for i in range(0, len(texts), batch):
            r = self.stub.Embed(self.pb.EmbedRequest(
                inputs=texts[i:i + batch], model=model, truncate=True,
                normalize=True), timeout=120)
            out += [list(e.values) for e in r.embeddings]
        return np.array(out, dtype=np.float64)

    def tokens(self, model, texts, batch=64):
        out = []
        for i in range(0, len(texts), batch):
            r = self.stub.EmbedTokens(self.pb.EmbedRequest(
                inputs=texts[i:i + batch], model=model, truncate=True),
                timeout=120)
            out += [(list(x.tokens), np.array([list(v.values) for v in x.vectors]))
                    for x in r.results]
        return out


def spearman(a, b):
    def ranks(x):
        order = np.argsort(x)
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):  # average ties
            idx = np.where(x == v)[0]
            r[idx] = r[idx].mean()
        return r
    ra, rb = ranks(np.asarray(a)), ranks(np.asarray(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def auc(pos, neg):
    pos, neg = np.asarray(pos), np.asarray(neg)
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def cos(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def read_stsb(split, stsb_dir=None):
    """[(sentence1, sentence2, score)] of an STS-B split ("train", "dev")."""
    import csv
    stsb_dir = stsb_dir or os.path.join(SHARED, "data", "eval", "stsb")
    path = os.path.join(stsb_dir, "stsb-en-%s.csv" % split)
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return [(r[0], r[1], float(r[2])) for r in rows[1:] if len(r) == 3]


def sts(client, model, pairs):
    """STS-B Spearman x 100, and paraphrase recall@1 among pairs >= 4."""
    a = client.embed(model, [p[0] for p in pairs])
    b = client.embed(model, [p[1] for p in pairs])
    cosines = [cos(x, y) for x, y in zip(a, b)]
    result = {"stsb_dev_spearman": 100 * spearman(cosines, [p[2] for p in pairs])}
    keep = [i for i, p in enumerate(pairs) if p[2] >= 4]
    sims = a[keep] @ b[keep].T
    ranks = (sims > np.diag(sims)[:, None]).sum(1)
    result["paraphrase_recall@1"] = float((ranks < 1).mean())
    result["paraphrase_pairs"] = len(keep)
    return result


def word_similarity(client, model):
    shared = os.path.join(SHARED, "data", "eval")
    sets = {}
    for name, file in (("wordsim353", "wordsim353.tsv"),
                       ("simlex999", "simlex999.txt")):
        rows = []
        with open(os.path.join(shared, file)) as f:
            for line in f:
                p = line.rstrip("\n").split("\t")
                if line.startswith("#") or len(p) < 3:
                    continue
                rows.append((p[0].lower(), p[1].lower(), float(p[2])))
        sets[name] = rows
    result = {}
    for name, pairs in sets.items():
        words = sorted({w for a, b, _ in pairs for w in (a, b)})
        vecs = {w: v[0] if len(v) else None
                for w, (_, v) in zip(words, client.tokens(model, words))}
        got = [cos(vecs[a], vecs[b]) for a, b, _ in pairs]
        result[name] = spearman(got, [s for _, _, s in pairs])
    return result


def order_pairs(test_sentences, rng, n=300):
    pairs = [("the dog bit the man", "the man bit the dog"),
             ("is this the answer ?", "this is the answer ?"),
             ("alice gave bob a book", "bob gave alice a book"),
             ("the cat chased the mouse", "the mouse chased the cat")]
    pool = [s for s in test_sentences if 6 <= len(s.split()) <= 20]
    rng.shuffle(pool)
    for s in pool:
        t = s.split()
        content = [i for i, w in enumerate(t) if w.isalpha() and len(w) > 3]
        if len(content) < 2:
            continue
        i, j = rng.sample(content, 2)
        if t[i] == t[j]:
            continue
        u = list(t)
        u[i], u[j] = u[j], u[i]
        pairs.append((s, " ".join(u)))
        if len(pairs) >= n:
            break
    return pairs


def wic_pairs(corpus, rng, n_max=600):
    by_word = {}
    with open(os.path.join(corpus, "wic.tsv")) as f:
        for line in f:
            word, sense, ex, split = line.rstrip("\n").split("\t")
            if split != "test":  # training may use the other words
                continue
            ex_norm = ex.lower()
            by_word.setdefault(word, {}).setdefault(sense, []).append(ex_norm)
    same, diff = [], []
    for word, senses in sorted(by_word.items()):
        keys = sorted(senses)
        for k in keys:
            exs = senses[k]
            for a in range(len(exs)):
                for b in range(a + 1, len(exs)):
                    same.append((word, exs[a], exs[b]))
        for a in range(len(keys)):
            for b in range(a + 1, len(keys)):
                diff.append((word, senses[keys[a]][0], senses[keys[b]][0]))
    rng.shuffle(same)
    rng.shuffle(diff)
    k = min(len(same), len(diff), n_max // 2)
    return same[:k], diff[:k]


def token_vector(tokens, vectors, word):
    for i, t in enumerate(tokens):
        if t == word:
            return vectors[i]
    return None


def logistic_cv(x, y, folds=5, epochs=300, lr=0.5, l2=1e-3):
    idx = np.random.RandomState(0).permutation(len(y))
    accs = []
    for f in range(folds):
        test = idx[f::folds]
        train = np.setdiff1d(idx, test)
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-8
        xt, xv = (x[train] - mu) / sd, (x[test] - mu) / sd
        w, b = np.zeros(x.shape[1]), 0.0
        for _ in range(epochs):
            p = 1 / (1 + np.exp(-(xt @ w + b)))
            g = p - y[train]
            w -= lr * (xt.T @ g / len(g) + l2 * w)
            b -= lr * g.mean()
        accs.append(((xv @ w + b > 0) == (y[test] > 0.5)).mean())
    return float(np.mean(accs))


def strip_punct(text):
    return " ".join(t for t in text.split() if t not in PUNCT).lower()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="127.0.0.1:50051")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--word_models", required=True)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs"))
    args = ap.parse_args()
    models = dict(kv.split("=") for kv in args.models.split(","))
    word_models = dict(kv.split("=") for kv in args.word_models.split(","))
    client = Client(args.server)
    rng = random.Random(1)
    with open(os.path.join(args.corpus, "test.txt")) as f:
        test = [l.strip() for l in f if l.strip()]
    qa = []
    with open(os.path.join(args.corpus, "qa.tsv")) as f:
        for line in f:
            q, a, src, split = line.rstrip("\n").split("\t")
            if split == "test":
                qa.append((q, a, src))
    rng.shuffle(qa)
    faq = [p for p in qa if p[2] != "wordnet"]
    qa = faq + [p for p in qa if p[2] == "wordnet"][:max(0, 1000 - len(faq))]
    orders = order_pairs(test, rng)
    same, diff = wic_pairs(args.corpus, rng)
    stsb = read_stsb("dev")
    results = {}
    for label, model in models.items():
        r = {"model": model}
        r.update(sts(client, model, stsb))
        r.update(word_similarity(client, word_models[label]))
        a = client.embed(model, [p[0] for p in orders])
        b = client.embed(model, [p[1] for p in orders])
        r["order_cosine"] = float(np.mean([cos(x, y) for x, y in zip(a, b)]))
        r["order_pairs"] = len(orders)
        scores = {}
        for name, pairs in (("same", same), ("diff", diff)):
            ta = client.tokens(model, [p[1] for p in pairs])
            tb = client.tokens(model, [p[2] for p in pairs])
            s = []
            for (word, _, _), (tka, va), (tkb, vb) in zip(pairs, ta, tb):
                x, y = token_vector(tka, va, word), token_vector(tkb, vb, word)
                if x is not None and y is not None:
                    # Rounded: a static vector's cosine with itself is 1
                    # up to the last bits, which must not rank pairs.
                    s.append(round(cos(x, y), 6))
            scores[name] = s
        r["wic_auc"] = auc(scores["same"], scores["diff"])
        r["wic_pairs"] = len(scores["same"]) + len(scores["diff"])
        qs = client.embed(model, [strip_punct(q) for q, _, _ in qa])
        ans = client.embed(model, [strip_punct(a) for _, a, _ in qa])
        x = np.vstack([qs, ans])
        y = np.concatenate([np.ones(len(qs)), np.zeros(len(ans))])
        r["qa_probe_accuracy"] = logistic_cv(x, y)
        sims = qs @ ans.T
        ranks = (sims > np.diag(sims)[:, None]).sum(1)
        r["recall@1"] = float((ranks < 1).mean())
        r["recall@10"] = float((ranks < 10).mean())
        r["qa_pairs"] = len(qa)
        n = len(faq)  # the FAQ pairs come first in qa
        faq_sims = sims[:n, :n]
        faq_ranks = (faq_sims > np.diag(faq_sims)[:, None]).sum(1)
        r["faq_recall@10"] = float((faq_ranks < 10).mean())
        results[label] = r
        print(label, json.dumps(r), flush=True)
    write(results, args, len(orders), len(same), len(diff), len(faq))


def write(results, args, n_order, n_same, n_diff, n_faq):
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "quality.json"), "w") as f:
        json.dump(results, f, indent=1)
    cols = [("stsb_dev_spearman", "STS-B dev Spearman x 100", "%.1f"),
            ("paraphrase_recall@1", "STS-B dev paraphrase retrieval recall@1", "%.3f"),
            ("recall@1", "retrieval recall@1 (held-out FAQ + WordNet)", "%.3f"),
            ("recall@10", "retrieval recall@10 (held-out FAQ + WordNet)", "%.3f"),
            ("faq_recall@10", "FAQ retrieval recall@10", "%.3f"),
            ("wic_auc", "word in context: ROC AUC", "%.3f"),
            ("order_cosine", "order: mean cosine (lower is better)", "%.3f"),
            ("qa_probe_accuracy", "question vs answer probe: accuracy", "%.3f"),
            ("wordsim353", "WordSim353 rho", "%.3f"),
            ("simlex999", "SimLex-999 rho", "%.3f")]
    labels = list(results)
    lines = ["| measure | " + " | ".join("%s (`%s`)" % (l, results[l]["model"]) for l in labels) + " |",
             "|---|" + "---|" * len(labels)]
    for key, name, fmt in cols:
        lines.append("| %s | %s |" % (name, " | ".join(fmt % results[l][key] for l in labels)))
    lines += ["", "Published for scale, not measured here (STS-B **test** split, "
              "Reimers and Gurevych 2019, Table 1):", "",
              "| published system | STS-B test Spearman x 100 |", "|---|---|"]
    lines += ["| %s | %.1f |" % (name, value) for name, value in PUBLISHED]
    with open(os.path.join(args.out, "quality_table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("pairs: order %d, word-in-context %d same + %d different sense, "
          "QA %d (%d from FAQs), STS-B dev paraphrases %d"
          % (n_order, n_same, n_diff, results[labels[0]]["qa_pairs"], n_faq,
             results[labels[0]]["paraphrase_pairs"]))


if __name__ == "__main__":
    main()
