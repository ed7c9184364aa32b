#!/usr/bin/env bash
# Trains the small fastText skip-gram model that ctxembed serves until a
# contextual default model exists: word vectors from WordNet's glosses
# (Debian package wordnet-base), written as a ctxembed model directory.
#
#   tools/make_fasttext_model.sh OUT_DIR
#
# About 25 s on 2 cores (two training threads, so not bit-reproducible).
set -euo pipefail
out=${1:?usage: make_fasttext_model.sh OUT_DIR}
wordnet=/usr/share/wordnet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Glosses: the text after "|" on each synset line, one sentence per line,
# lower-cased, with punctuation split from words.
for pos in noun verb adj adv; do
  grep -v '^  ' "$wordnet/data.$pos" | cut -d'|' -f2-
done | tr 'A-Z' 'a-z' | sed -e 's/[;:]/\n/g' -e 's/\([,.()"!?]\)/ \1 /g' \
  -e 's/`//g' | awk 'NF >= 3' > "$work/corpus.txt"

fasttext skipgram -input "$work/corpus.txt" -output "$work/ft" \
  -dim 64 -minn 3 -maxn 6 -bucket 100000 -minCount 3 -epoch 3 -ws 5 \
  -thread 2 -seed 1 -verbose 0

mkdir -p "$out"
cp "$work/ft.bin" "$out/vectors.bin"
cat > "$out/config.json" <<JSON
{
  "ctxembed_format": 1,
  "name": "ft-small",
  "max_tokens": 256,
  "tokenizer": {"kind": "whitespace", "lowercase": true},
  "embedding": {"kind": "fasttext", "file": "vectors.bin"},
  "encoder": [],
  "pooling": "fasttext"
}
JSON
echo "model written to $out ($(wc -w < "$work/corpus.txt") words of WordNet glosses)"
