#!/usr/bin/env bash
# Rebuilds ctxembed's default model from Debian packages and the STS
# Benchmark splits in ../shared, with one command:
#
#   tools/train/run.sh [MINUTES [ORDER_MINUTES]]
#
# (minutes of the encoder's two training phases; default 19 and 18)
#
#   CTXEMBED_TRAIN_INIT=MODEL_DIR tools/train/run.sh 0 [ORDER_MINUTES]
#
# continues from a model directory train_sim.py wrote (e.g. models/default)
# instead of the first phase.
#
# 1. corpus.py: English text from Debian packages -> var/train/corpus
#    (sentences, held-out splits, paraphrase and question-answer pairs)
# 2. fastText skip-gram word vectors (the kind of file BlazingText writes)
# 3. Encoder 3 (train_sim.py): bi-LSTM over the word vectors, its input
#    concatenated to its states, SIF pooling, projection; trained for
#    similarity (the word vectors tuned too), chosen on the STS-B dev split;
#    then ORDER_MINUTES more with an order loss, keeping the best STS-B dev
#    checkpoint whose order cosine on held-aside training text is <= 0.945
# 4. the baselines over the same word vectors: a plain-mean bag and a SIF
#    bag (common component from tools/sif_components.py)
# 5. tools/eval/evaluate.py through a real server: docs/quality.md
# 6. finish.py: the encoder -> models/default if it beats SIF on STS-B dev
#    (else the SIF bag), with MODEL_CARD.md
# Seeds are fixed, but fastText uses 2 threads and training is bounded by
# time, so runs agree in their figures, not bit for bit. About 43 minutes
# on 2 cores with the defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=${1:-19}
order_minutes=${2:-18}
root=$PWD
work=var/train
stsb=${CTXEMBED_SHARED_DIR:-$root/../shared}/data/eval/stsb
if [ ! -f "$stsb/stsb-en-train.csv" ]; then
  echo "run.sh: needs the STS Benchmark splits in $stsb (set CTXEMBED_SHARED_DIR)" >&2
  exit 1
fi
mkdir -p "$work"

data_packages=(wordnet-base dict-gcide bible-kjv bible-kjv-text perl-doc
               python3.11-doc dict-foldoc jargon-text fortunes fortunes-min)
missing=()
for p in "${data_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
scripts/setup.sh > /dev/null
export OPENBLAS_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1
PY=/usr/bin/python3

t0=$(date +%s)
$PY tools/train/corpus.py "$work/corpus"
t1=$(date +%s)
fasttext skipgram -input "$work/corpus/train.txt" -output "$work/fasttext" \
  -dim 100 -minn 3 -maxn 6 -bucket 10000 -minCount 8 -epoch 5 -ws 5 \
  -thread 2 -seed 1 -verbose 1
t2=$(date +%s)
rm -rf "$work/ctx-sif-bilstm"
init=()
vectors=$root/$work/fasttext.bin
if [ -n "${CTXEMBED_TRAIN_INIT:-}" ]; then
  rm -rf "$work/init"
  cp -r "$CTXEMBED_TRAIN_INIT" "$work/init"  # it may be models/default
  init=(--init "$root/$work/init")
  vectors=$root/$work/init/vectors.bin
fi
(cd tools/train && TRAIN_THREADS=2 $PY train_sim.py "$root/$work/corpus" \
  "$vectors" "$stsb" "$root/$work/ctx-sif-bilstm" "${init[@]}" \
  --minutes "$minutes" --order_minutes "$order_minutes" --order_weight 3 \
  --order_target 0.945)
t3=$(date +%s)

# The training-free baselines over fastText's own (untuned) word vectors,
# and a bag over Encoder 3's word vectors, for its word-similarity rows.
a=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["sif_a"])' \
  "$work/ctx-sif-bilstm/training.json")
rm -rf "$work/ft-bag" "$work/sif-bag" "$work/enc3-words" "$work/previous-default"
mkdir -p "$work/ft-bag" "$work/sif-bag" "$work/enc3-words"
(cd tools/train && $PY -c 'import sys, common; common.slim_fasttext(*sys.argv[1:])' \
  "$root/$work/fasttext.bin" "$root/$work/ft-bag/vectors.bin")
cp "$work/ft-bag/vectors.bin" "$work/sif-bag/vectors.bin"
cp "$work/ctx-sif-bilstm/vectors.bin" "$work/enc3-words/vectors.bin"
cat > "$work/enc3-words/config.json" <<JSON
{"ctxembed_format": 1, "name": "enc3-words", "max_tokens": 256,
 "tokenizer": {"kind": "words_and_punct", "lowercase": true},
 "embedding": {"kind": "fasttext", "file": "vectors.bin"}, "encoder": []}
JSON
cat > "$work/ft-bag/config.json" <<JSON
{"ctxembed_format": 1, "name": "ft-bag", "max_tokens": 256,
 "tokenizer": {"kind": "words_and_punct", "lowercase": true},
 "embedding": {"kind": "fasttext", "file": "vectors.bin"}, "encoder": [],
 "pooling": "mean"}
JSON
cat > "$work/sif-bag/config.json" <<JSON
{"ctxembed_format": 1, "name": "sif-bag", "max_tokens": 256,
 "tokenizer": {"kind": "words_and_punct", "lowercase": true},
 "embedding": {"kind": "fasttext", "file": "vectors.bin"}, "encoder": [],
 "sif": {"a": $a}, "normalize": true}
JSON
$PY tools/sif_components.py "$work/sif-bag" "$work/corpus/train.txt" --k 1 --pooling
# The model this run replaces, for comparison (renamed so names differ).
models=$work/ft-bag,$work/sif-bag,$work/ctx-sif-bilstm,$work/enc3-words
labels=bag=ft-bag,sif=sif-bag,enc3=ctx-sif-bilstm
words=bag=ft-bag,sif=ft-bag,enc3=enc3-words
if [ -f models/default/config.json ]; then
  cp -r models/default "$work/previous-default"
  $PY - "$work/previous-default/config.json" <<'PYCODE'
import json, sys
c = json.load(open(sys.argv[1])); c["name"] = "previous-default"
json.dump(c, open(sys.argv[1], "w"), indent=1)
PYCODE
  models=$models,$work/previous-default
  labels=$labels,prev=previous-default
  words=$words,prev=previous-default
fi

port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
build/server/ctxembed-server --grpc_address=127.0.0.1:$port --metrics_address= \
  --model_dir="$models" 2> "$work/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "ready:" "$work/server.log" && break; sleep 0.2; done
$PY tools/eval/evaluate.py --server 127.0.0.1:$port --corpus "$work/corpus" \
  --models "$labels" --word_models "$words" --out "$work/eval"
kill $server; wait $server || true; trap - EXIT
t4=$(date +%s)

$PY tools/train/finish.py --work "$work" --minutes "$minutes $order_minutes" \
  --init "${CTXEMBED_TRAIN_INIT:-}" \
  --times "$t0,$t1,$t2,$t3,$t4"
