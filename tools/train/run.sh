#!/usr/bin/env bash
# Rebuilds ctxembed's default model from Debian packages, with one command:
#
#   tools/train/run.sh [MINUTES_PER_ENCODER]     (default 15)
#
# 1. corpus.py: English text from Debian packages -> var/train/corpus
# 2. fastText skip-gram word vectors (the kind of file BlazingText writes)
# 3. Encoder 1, BlazingText + bi-LSTM language model (train_lm.py)
# 4. Encoder 2, Sockeye-style seq2seq denoising autoencoder (train_s2s.py)
# 5. tools/eval/evaluate.py through a real server: docs/quality.md
# 6. the better encoder -> models/default, with MODEL_CARD.md
# Seeds are fixed, but fastText uses 2 threads and training is bounded by
# time, so runs agree in their figures, not bit for bit.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=${1:-15}
root=$PWD
work=var/train
mkdir -p "$work"

data_packages=(wordnet-base perl-doc python3.11-doc dict-foldoc jargon-text
               fortunes fortunes-min)
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
  -dim 100 -minn 3 -maxn 6 -bucket 20000 -minCount 5 -epoch 5 -ws 5 \
  -thread 2 -seed 1 -verbose 1
t2=$(date +%s)
# The two encoders train at once, one core each (PyTorch gains little from a
# second thread on these small matrices).
(cd tools/train && TRAIN_THREADS=1 $PY train_lm.py "$root/$work/corpus" \
  "$root/$work/fasttext.bin" "$root/$work/bt-bilstm" --minutes "$minutes") &
lm=$!
(cd tools/train && TRAIN_THREADS=1 $PY train_s2s.py "$root/$work/corpus" \
  "$root/$work/s2s-encoder" --minutes "$minutes") &
s2s=$!
wait $lm
t3=$(date +%s)
wait $s2s
t4=$(date +%s)

# The baselines: the same word vectors as a bag (fastText sentence vector),
# and encoder 2's learned table as a bag (for its word similarity).
mkdir -p "$work/ft-bag" "$work/s2s-table"
cp "$work/bt-bilstm/vectors.bin" "$work/ft-bag/vectors.bin"
cat > "$work/ft-bag/config.json" <<JSON
{"ctxembed_format": 1, "name": "ft-bag", "max_tokens": 256,
 "tokenizer": {"kind": "words_and_punct", "lowercase": true},
 "embedding": {"kind": "fasttext", "file": "vectors.bin"}, "encoder": [],
 "pooling": "fasttext"}
JSON
cat > "$work/s2s-table/config.json" <<JSON
{"ctxembed_format": 1, "name": "s2s-table", "max_tokens": 256,
 "tokenizer": {"kind": "words_and_punct", "lowercase": true},
 "weights": "../s2s-encoder/model.safetensors",
 "embedding": {"kind": "table", "tensor": "encoder.embed.weight",
               "vocab": "../s2s-encoder/vocab.txt", "unk_token": "<unk>"},
 "encoder": [], "pooling": "mean"}
JSON

port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
build/server/ctxembed-server --grpc_address=127.0.0.1:$port --metrics_address= \
  --model_dir=$work/ft-bag,$work/bt-bilstm,$work/s2s-encoder,$work/s2s-table \
  2> "$work/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "ready:" "$work/server.log" && break; sleep 0.2; done
$PY tools/eval/evaluate.py --server 127.0.0.1:$port --corpus "$work/corpus" \
  --models bag=ft-bag,enc1=bt-bilstm,enc2=s2s-encoder \
  --word_models bag=ft-bag,enc1=ft-bag,enc2=s2s-table --out "$work/eval"
kill $server; wait $server || true; trap - EXIT
t5=$(date +%s)

$PY tools/train/finish.py --work "$work" --minutes "$minutes" \
  --times "$t0,$t1,$t2,$t3,$t4,$t5"
