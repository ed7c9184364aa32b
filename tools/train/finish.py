#!/usr/bin/python3
"""Last step of tools/train/run.sh: installs the default model and writes
docs/quality.md and the model card.

The default is the trained encoder (Encoder 3) if it beats SIF over the same
word vectors on the STS-B dev split, and otherwise the SIF bag itself: the
served vector is never worse than SIF on its own word vectors."""
import argparse
import json
import os
import shutil
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAMES = {"bag": "bag of vectors (plain mean of the fastText word vectors)",
         "sif": "SIF bag (the same word vectors, SIF weights, 1 common component removed)",
         "enc3": "Encoder 3: fastText vectors + bi-LSTM (input concatenated to its states) "
                 "+ SIF pooling + projection, trained for similarity",
         "prev": "the previous default model, as committed before this run"}
SOURCES = """| source | Debian package | licence |
| --- | --- | --- |
| WordNet 3.0 glosses and examples | wordnet-base | WordNet 3.0 licence (BSD-style, Princeton) |
| GCIDE (Webster's 1913 + WordNet based) | dict-gcide | GPL-2+ |
| King James Bible | bible-kjv-text, bible-kjv | public domain (text); GPL-2+ (decoder) |
| Perl documentation, perlfaq | perl-doc | GPL-1+ or Artistic |
| Python 3.11 documentation and FAQ | python3.11-doc | PSF licence |
| FOLDOC | dict-foldoc | GFDL-1.1+ |
| The Jargon File | jargon-text | public domain |
| fortunes | fortunes, fortunes-min | BSD-3-clause and others (see the packages' copyright files) |
| STS Benchmark train split (training), dev split (selection) | ../shared/data/eval/stsb (stsb-multi-mt CSVs) | the STS Benchmark's (sources: news, captions, forums; see the STS wiki) |"""


def targets(r, sif, bag):
    """The issue's targets for the default model, each with its verdict."""
    checks = [
        ("STS-B dev Spearman >= 80", r["stsb_dev_spearman"] >= 80,
         "%.1f" % r["stsb_dev_spearman"]),
        ("STS-B dev above SIF on its own word vectors",
         r["stsb_dev_spearman"] > sif["stsb_dev_spearman"],
         "%.1f vs %.1f" % (r["stsb_dev_spearman"], sif["stsb_dev_spearman"])),
        ("FAQ retrieval recall@10 >= the bag's", r["faq_recall@10"] >= bag["faq_recall@10"],
         "%.3f vs %.3f" % (r["faq_recall@10"], bag["faq_recall@10"])),
        ("paraphrase retrieval recall@1 >= SIF's",
         r["paraphrase_recall@1"] >= sif["paraphrase_recall@1"],
         "%.3f vs %.3f" % (r["paraphrase_recall@1"], sif["paraphrase_recall@1"])),
        ("word-in-context AUC >= 0.75", r["wic_auc"] >= 0.75, "%.3f" % r["wic_auc"]),
        ("order cosine <= 0.95", r["order_cosine"] <= 0.95, "%.3f" % r["order_cosine"]),
    ]
    lines = ["| target | met | measured |", "|---|---|---|"]
    lines += ["| %s | %s | %s |" % (name, "yes" if ok else "**no**", got)
              for name, ok, got in checks]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--minutes", required=True,
                    help="run.sh's arguments: the training phases' minutes")
    ap.add_argument("--times", required=True,
                    help="start, corpus done, fastText done, encoder done, "
                         "evaluation done (epoch seconds)")
    ap.add_argument("--init", default="",
                    help="CTXEMBED_TRAIN_INIT: the model directory the "
                    "encoder continued from, if any")
    args = ap.parse_args()
    t = [int(x) for x in args.times.split(",")]
    minutes = [(t[i + 1] - t[i]) / 60 for i in range(4)]
    with open(os.path.join(args.work, "eval", "quality.json")) as f:
        results = json.load(f)
    with open(os.path.join(args.work, "eval", "quality_table.md")) as f:
        table = f.read()
    with open(os.path.join(args.work, "corpus", "stats.json")) as f:
        stats = json.load(f)
    enc, sif, bag = results["enc3"], results["sif"], results["bag"]
    best = "enc3" if enc["stsb_dev_spearman"] > sif["stsb_dev_spearman"] else "sif"
    src = os.path.join(args.work, results[best]["model"])
    dst = os.path.join(ROOT, "models", "default")
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    size_mb = sum(os.path.getsize(os.path.join(dst, f)) for f in os.listdir(dst)) / 1e6
    with open(os.path.join(args.work, "ctx-sif-bilstm", "training.json")) as f:
        training = json.load(f)
    if args.init:  # as the user named it, not run.sh's working copy
        training["init"] = args.init
        if best == "enc3":
            with open(os.path.join(dst, "training.json"), "w") as f:
                json.dump(training, f, indent=1)
    training.pop("log", None)
    corpus = "Corpus: %d words (%s); %d paraphrase pairs (%s) for training; " \
             "%d question-answer pairs, of which the FAQ pairs and a tenth of " \
             "the WordNet ones are held out for evaluation and the other " \
             "WordNet ones train." % (
                 stats["total_words"],
                 ", ".join("%s %d" % (k, v) for k, v in stats.items()
                           if isinstance(v, int) and k not in
                           ("total_words", "qa_pairs", "wic_examples")),
                 sum(stats["paraphrase_pairs"].values()),
                 ", ".join("%s %d" % kv for kv in stats["paraphrase_pairs"].items()),
                 stats["qa_pairs"])
    command = "tools/train/run.sh %s" % args.minutes
    if args.init:
        command = "CTXEMBED_TRAIN_INIT=%s %s" % (args.init, command)
    times = ("Rebuild: `%s` (as root on Debian 12, with "
             "../shared beside the checkout for the STS-B splits; installs the "
             "data packages). This run: %.1f minutes on 2 cores: corpus %.1f, "
             "fastText %.1f, Encoder 3 %.1f, evaluation %.1f." % (
                 command, (t[4] - t[0]) / 60, *minutes))
    if args.init:
        times += (" The encoder continued from `%s` as it was before this run "
                  "(only the order phase ran; its first phase is that "
                  "model's training). The bag and SIF columns use this run's "
                  "fastText vectors, trained afresh from the same corpus."
                  % args.init)
    verdicts = targets(results[best], sif, bag)
    columns = "\n".join("- `%s` (%s): %s." % (k, r["model"], NAMES[k])
                        for k, r in results.items())
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    with open(os.path.join(ROOT, "docs", "quality.md"), "w") as f:
        f.write("\n".join([
            "# Quality: the default model against bags of vectors",
            "",
            "Written by `tools/train/run.sh` on %s: `tools/eval/evaluate.py` "
            "against a real `ctxembed-server` serving every column's model, "
            "all through the gRPC API." % time.strftime("%Y-%m-%d"),
            "The report's own command (server on 127.0.0.1:PORT serving the "
            "model directories under var/train):",
            "",
            "    tools/eval/evaluate.py --server 127.0.0.1:PORT --corpus var/train/corpus \\",
            "      --models bag=ft-bag,sif=sif-bag,enc3=ctx-sif-bilstm[,prev=previous-default] \\",
            "      --word_models bag=ft-bag,sif=ft-bag,enc3=enc3-words[,prev=previous-default]",
            "",
            columns,
            "",
            "All share one tokenizer (words_and_punct, lower case). The two "
            "bags use fastText's own word vectors; Encoder 3 starts from them "
            "and %s, and its word-similarity rows are its own vectors'." % (
                "tunes them (the input matrix: word and n-gram rows) while it "
                "trains" if training.get("vector_lr") else "keeps them frozen"),
            "",
            table,
            "Data: STS-B dev (1,500 pairs; never trained on, used to choose "
            "the checkpoint and SIF's a), %d order pairs (four written by "
            "hand, the rest held-out sentences with two words swapped), %d "
            "word-in-context pairs (WordNet examples of held-out words: same "
            "sense / other sense), %d question-answer pairs (all FAQ pairs, "
            "never trained on, and held-out WordNet definitions)." % (
                bag["order_pairs"], bag["wic_pairs"], bag["qa_pairs"]),
            "",
            "## The default model (`%s`) against the targets" % results[best]["model"],
            "",
            verdicts,
            "## Data and time", "", SOURCES, "", corpus, "", times, ""]))
    with open(os.path.join(dst, "MODEL_CARD.md"), "w") as f:
        f.write("\n".join([
            "# ctxembed default model: %s" % results[best]["model"],
            "",
            "%s. Chosen because it %s SIF over the same word vectors on the "
            "STS-B dev split (%.1f vs %.1f)." % (
                NAMES[best], "beats" if best == "enc3" else "is",
                results[best]["stsb_dev_spearman"], sif["stsb_dev_spearman"]),
            "",
            "Size: %.1f MB (fastText .bin without its output matrix, F32 "
            "safetensors, SIF components). Tokenizer: words_and_punct, lower "
            "case, max 256 tokens. Output: unit vectors." % size_mb,
            "",
            "Training (`tools/train/train_sim.py`): %s" % json.dumps(training),
            "",
            "## Scores (docs/quality.md)", "", table,
            "## Targets", "", verdicts,
            "## Data", "", SOURCES, "", corpus, "", times, ""]))
    print("default model: %s (%.1f MB)" % (results[best]["model"], size_mb))


if __name__ == "__main__":
    main()
