#!/usr/bin/python3
"""Builds the training corpus from Debian-packaged English text.

Sources (Debian packages; see MODEL_CARD.md for licences): WordNet glosses
and examples (wordnet-base), the Collaborative International Dictionary of
English (dict-gcide), the King James Bible (bible-kjv, bible-kjv-text), the
Perl documentation with perlfaq (perl-doc), the Python documentation with
its FAQ (python3.11-doc), FOLDOC (dict-foldoc), the Jargon File
(jargon-text), fortunes (fortunes, fortunes-min).

Writes to OUT_DIR: train.txt and test.txt (one sentence per line, as the
model's words_and_punct + lowercase tokenizer splits it, tokens joined by
spaces; 2% held out by a hash of the sentence), qa.tsv (question, answer,
source, split: FAQ questions with their answers and WordNet "what is X"
with the definition), wic.tsv (WordNet example sentences by word and sense,
split by word: the word-in-context evaluation uses only "test" words),
pairs.tsv (paraphrase pairs for similarity training, none from the FAQs:
GCIDE and WordNet definitions of the same one-sense word, WordNet example
sentences with a word replaced by a synonym from its synset) and
stats.json.

Usage: corpus.py OUT_DIR
"""
import glob
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_encoder import tokenize  # noqa: E402

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
SPACES = re.compile(r"\s+")


def norm(text):
    return " ".join(tokenize(text, "words_and_punct", lowercase=True))


def bucket(text, mod):
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:8], 16) % mod


def sentences_of(paragraph):
    paragraph = SPACES.sub(" ", paragraph).strip()
    for s in SENTENCE_END.split(paragraph):
        words = s.split()
        if 3 <= len(words) <= 60:
            letters = sum(c.isalpha() for c in s)
            if letters >= 0.6 * len(s.replace(" ", "")):
                yield s


def wordnet():
    """Yields ("text", sentence), ("qa", q, a) and ("wic", word, sense, ex)."""
    for pos in ("noun", "verb", "adj", "adv"):
        with open("/usr/share/wordnet/data." + pos, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue
                head, gloss = line.split("|", 1)
                fields = head.split()
                offset, n_words = fields[0], int(fields[3], 16)
                lemmas = [fields[4 + 2 * i].split("(")[0].replace("_", " ")
                          for i in range(n_words)]
                parts = [p.strip() for p in gloss.split(";") if p.strip()]
                definition = parts[0].strip('"') if parts else ""
                examples = [p.strip('" ') for p in parts[1:] if p.startswith('"')]
                if definition:
                    yield ("text", definition)
                    for lemma in lemmas:
                        yield ("def", "wordnet", pos, lemma.lower(), definition)
                    if pos == "noun":
                        yield ("qa", "what is %s ?" % lemmas[0], definition,
                               "wordnet")
                for ex in examples:
                    yield ("text", ex)
                    yield ("syn", ex, lemmas)
                    for lemma in lemmas:
                        if " " not in lemma and re.search(
                                r"\b%s\b" % re.escape(lemma), ex, re.I):
                            yield ("wic", lemma.lower(), "%s.%s" % (pos, offset), ex)


GCIDE_HEAD = re.compile(r"^([A-Za-z][^\\\n]*?) \\[^\\]*\\,?")
GCIDE_POS = {"n": "noun", "v": "verb", "a": "adj", "adv": "adv"}


def gcide_clean(body):
    body = re.sub(r"\[[^\]]*\]", " ", body)           # etymologies, sources
    body = re.sub(r"--[A-Z][A-Za-z.]*(\s[A-Z][A-Za-z.]*)*", " ", body)  # citations
    body = body.replace("{", "").replace("}", "")
    body = re.sub(r"\([A-Z][a-z]+\.?( [A-Z][a-z]+\.?)*\)", " ", body)  # (Anat.)
    return SPACES.sub(" ", body).strip()


def gcide():
    """Yields ("text", sentence) and, for each headword's first sense,
    ("def", "gcide", pos, word, definition)."""
    path = "/usr/share/dictd/gcide.dict.dz"
    if not os.path.exists(path):
        return
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    for block in re.split(r"\n\s*\n", text):
        m = GCIDE_HEAD.match(block)
        if not m:
            continue
        rest = block[m.end():].lstrip()
        pos = GCIDE_POS.get(rest.split(".", 1)[0].strip(), None)
        body = gcide_clean(rest)
        body = re.sub(r"^(?:(?:[a-z]{1,5}\.|pl\.|&|;|,)\s*)+", "", body)
        senses = [x.strip() for x in re.split(r"\b\d+\.\s", body) if x.strip()]
        for sense in senses:
            yield from (("text", s) for s in sentences_of(sense))
        if pos and senses:
            first = senses[0].split(";")[0].strip()
            if 3 <= len(first.split()) <= 40:
                yield ("def", "gcide", pos, m.group(1).lower(), first)


def bible():
    """The King James Bible, verse by verse (bible-kjv decodes its data)."""
    try:
        out = subprocess.run(["bible", "Gen1:1-Rev22:21"], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return
    verse = []
    for line in out.split("\n"):
        m = re.match(r"^\s+\d+ (.*)", line)
        if m or not line.strip():
            if verse:
                yield from (("text", s) for s in sentences_of(" ".join(verse)))
            verse = [m.group(1)] if m else []
        elif verse:
            verse.append(line.strip())
    if verse:
        yield from (("text", s) for s in sentences_of(" ".join(verse)))


def pod_paragraphs(path):
    """Plain paragraphs of a POD file, with =head2 headings marked."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    for block in re.split(r"\n\s*\n", text):
        if block.startswith("=head2 "):
            yield ("head", block[7:].strip())
        elif block.startswith("=") or block.startswith((" ", "\t")):
            continue
        else:
            yield ("para", re.sub(r"[A-Z]<+([^<>]*)>+", r"\1", block))


def perl_docs():
    for path in sorted(glob.glob("/usr/share/perl/5.*/pod/*.pod")):
        question = None
        for kind, text in pod_paragraphs(path):
            if kind == "head":
                question = text if text.endswith("?") else None
                continue
            for s in sentences_of(text):
                yield ("text", s)
            if question and "perlfaq" in path:
                first = next(iter(sentences_of(text)), None)
                if first:
                    yield ("qa", question, first, "perlfaq")
                question = None


def python_docs():
    pattern = "/usr/share/doc/python3.11/html/_sources/**/*.rst.txt"
    for path in sorted(glob.glob(pattern, recursive=True)):
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        question = None
        para = []
        for i, line in enumerate(lines + [""]):
            underline = i + 1 < len(lines) and re.fullmatch(r"[=\-~^*]{3,}", lines[i + 1].strip() or "x")
            if underline and line.strip():
                question = line.strip() if line.strip().endswith("?") else None
                continue
            if re.fullmatch(r"[=\-~^*]{3,}", line.strip() or "x"):
                continue
            if line.strip() and not line.startswith((" ", "\t", "..", ">>>")):
                para.append(line)
                continue
            if para:
                text = re.sub(r":[a-z:]+:`~?([^`]*)`", r"\1", " ".join(para))
                text = text.replace("``", "").replace("`", "")
                sents = list(sentences_of(text))
                for s in sents:
                    yield ("text", s)
                if question and "/faq/" in path and sents:
                    yield ("qa", question, sents[0], "pythonfaq")
                question = None
                para = []


def gz_lines(path):
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        yield from f


def foldoc_and_jargon():
    for path in ("/usr/share/dictd/foldoc.dict.dz",
                 "/usr/share/doc/jargon-text/jargon.txt.gz"):
        if not os.path.exists(path):
            continue
        para = []
        for line in gz_lines(path):
            if line.strip():
                para.append(line.strip())
            elif para:
                yield from (("text", s) for s in sentences_of(" ".join(para)))
                para = []


def fortunes():
    for path in sorted(glob.glob("/usr/share/games/fortunes/*")):
        if path.endswith(".dat") or os.path.isdir(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for chunk in f.read().split("\n%\n"):
                yield from (("text", s) for s in sentences_of(chunk))


def synonym_pairs(examples, rng):
    """(example, example with one lemma replaced by a synonym of its synset):
    paraphrases that differ in one word."""
    pairs = []
    for ex, lemmas in examples:
        singles = [l for l in lemmas if " " not in l and l.isalpha()]
        if len(singles) < 2:
            continue
        for lemma in singles:
            pattern = re.compile(r"\b%s\b" % re.escape(lemma), re.I)
            if pattern.search(ex):
                other = rng.choice([l for l in singles if l != lemma])
                pairs.append((norm(ex), norm(pattern.sub(other, ex, count=1)),
                              "synonym"))
                break
    return pairs


def definition_pairs(defs):
    """WordNet and GCIDE definitions of words that have one sense in
    WordNet for that part of speech: the two dictionaries define the same
    sense, in other words."""
    wordnet, gcide_defs = {}, {}
    for source, pos, word, definition in defs:
        table = wordnet if source == "wordnet" else gcide_defs
        table.setdefault((pos, word), []).append(definition)
    pairs = []
    for key, wn in sorted(wordnet.items()):
        if len(wn) == 1 and key in gcide_defs:
            a, b = norm(wn[0]), norm(gcide_defs[key][0])
            if a != b:
                pairs.append((a, b, "definitions"))
    return pairs


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seen, stats = set(), {}
    qa, wic, defs, examples = [], [], [], []
    with open(os.path.join(out, "train.txt"), "w") as train, \
            open(os.path.join(out, "test.txt"), "w") as test:
        for name, source in (("wordnet", wordnet), ("gcide", gcide),
                             ("bible-kjv", bible), ("perl-doc", perl_docs),
                             ("python3.11-doc", python_docs),
                             ("foldoc+jargon", foldoc_and_jargon),
                             ("fortunes", fortunes)):
            count = 0
            for item in source():
                if item[0] == "qa":
                    qa.append((norm(item[1]), norm(item[2]), item[3]))
                    continue
                if item[0] == "wic":
                    wic.append(item[1:])
                    continue
                if item[0] == "def":
                    defs.append(item[1:])
                    continue
                if item[0] == "syn":
                    examples.append(item[1:])
                    continue
                s = norm(item[1])
                if s in seen or len(s.split()) < 3:
                    continue
                seen.add(s)
                (test if bucket(s, 100) < 2 else train).write(s + "\n")
                count += len(s.split())
            stats[name] = count
    # FAQ pairs are few: all are evaluation data. WordNet pairs: 10% held out.
    with open(os.path.join(out, "qa.tsv"), "w") as f:
        for q, a, src in qa:
            split = "test" if src != "wordnet" or bucket(q, 10) == 0 else "train"
            f.write("%s\t%s\t%s\t%s\n" % (q, a, src, split))
    # Word in context: a fifth of the words are held out for evaluation.
    with open(os.path.join(out, "wic.tsv"), "w") as f:
        for word, sense, ex in wic:
            split = "test" if bucket(word, 5) == 0 else "train"
            f.write("%s\t%s\t%s\t%s\n" % (word, sense, ex, split))
    # Paraphrase pairs for training; held-out sentences stay out.
    import random
    pairs = definition_pairs(defs) + synonym_pairs(examples, random.Random(1))
    pairs = [p for p in pairs if bucket(p[0], 100) >= 2 and bucket(p[1], 100) >= 2]
    with open(os.path.join(out, "pairs.tsv"), "w") as f:
        for a, b, src in pairs:
            f.write("%s\t%s\t%s\n" % (a, b, src))
    stats["total_words"] = sum(v for k, v in stats.items())
    stats["qa_pairs"] = len(qa)
    stats["wic_examples"] = len(wic)
    stats["paraphrase_pairs"] = {src: sum(1 for p in pairs if p[2] == src)
                                 for src in ("definitions", "synonym")}
    with open(os.path.join(out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
