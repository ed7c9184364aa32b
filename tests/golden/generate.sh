#!/usr/bin/env bash
# Regenerates the golden fastText models and their reference outputs.
#
# The reference is the fastText CLI (Debian package `fasttext`, 0.9.2):
# `print-word-vectors` and `print-sentence-vectors`, printed to 5 significant
# digits; and, for bit-for-bit checks, fastText's own Python binding
# (python3-fasttext, the same C++ code) writing each float exactly.
# The training text is WordNet's noun glosses (Debian wordnet-base) plus
# extra_sentences.txt (non-ASCII words). Usage: tests/golden/generate.sh
set -euo pipefail
cd "$(dirname "$0")"
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Corpus: the first 1500 noun glosses, lower-cased words kept as they are.
$PY - "$work/corpus.txt" <<'PYEOF'
import sys
out = []
with open("/usr/share/wordnet/data.noun", encoding="latin-1") as f:
    for line in f:
        if line.startswith("  ") or "|" not in line:
            continue
        gloss = line.split("|", 1)[1].strip()
        out.append(gloss.replace(";", " ").replace('"', " "))
        if len(out) == 1500:
            break
extra = open("extra_sentences.txt", encoding="utf-8").read().splitlines()
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for i, line in enumerate(out):
        f.write(line + "\n")
        if i % 50 == 0:
            f.write("\n".join(extra) + "\n")
PYEOF

# name | fasttext command and flags
models=(
  "sg_d8|skipgram -dim 8 -minn 3 -maxn 6 -bucket 500 -minCount 3"
  "cbow_d12|cbow -dim 12 -minn 2 -maxn 4 -bucket 300 -minCount 3"
  "sg_minn1|skipgram -dim 5 -minn 1 -maxn 3 -bucket 200 -minCount 5"
  "sg_nosub|skipgram -dim 6 -minn 0 -maxn 0 -bucket 0 -minCount 3"
)
rm -rf models expected
mkdir -p models expected
for spec in "${models[@]}"; do
  name=${spec%%|*}
  args=${spec#*|}
  dir=models/$name
  mkdir -p "$dir"
  # One thread and a fixed seed make training repeatable.
  fasttext $args -input "$work/corpus.txt" -output "$work/$name" \
    -epoch 2 -thread 1 -seed 7 -verbose 0
  cp "$work/$name.bin" "$dir/vectors.bin"
  cat > "$dir/config.json" <<JSON
{
  "ctxembed_format": 1,
  "name": "$name",
  "max_tokens": 64,
  "tokenizer": {"kind": "whitespace", "lowercase": false},
  "embedding": {"kind": "fasttext", "file": "vectors.bin"},
  "encoder": [],
  "pooling": "fasttext"
}
JSON
  fasttext print-word-vectors "$dir/vectors.bin" < queries_words.txt \
    > "expected/$name.words.txt"
  fasttext print-sentence-vectors "$dir/vectors.bin" < queries_sentences.txt \
    > "expected/$name.sentences.txt"
  $PY exact_vectors.py "$dir/vectors.bin" queries_words.txt \
    queries_sentences.txt > "expected/$name.exact.txt"
done

# The .vec of one model as a text-format model, and the same table in the
# word2vec C binary format (written from the .vec values by vec_to_w2v.py).
mkdir -p models/sg_d8_vec models/sg_d8_w2v
cp "$work/sg_d8.vec" models/sg_d8_vec/vectors.vec
$PY vec_to_w2v.py "$work/sg_d8.vec" models/sg_d8_w2v/vectors.w2v
for kind in vec w2v; do
  file=$(basename models/sg_d8_$kind/vectors.*)
  sed -e "s/\"sg_d8\"/\"sg_d8_$kind\"/" -e "s/vectors.bin/$file/" \
    models/sg_d8/config.json > models/sg_d8_$kind/config.json
done

# Reference outputs for the fastText files written by other tools
# (../shared/data/fasttext-external), where the CLI accepts them.
ext=${CTXEMBED_SHARED_DIR:-../../../shared}/data/fasttext-external
if [ -d "$ext" ]; then
  for m in crime-and-punishment toy-model lee_fasttext_new pang_lee_polarity_fasttext; do
    fasttext print-word-vectors "$ext/$m.bin" < queries_words.txt \
      > "expected/external.$m.words.txt"
    fasttext print-sentence-vectors "$ext/$m.bin" < queries_sentences.txt \
      > "expected/external.$m.sentences.txt"
  done
fi
echo "golden data written to $(pwd)/models and $(pwd)/expected"
