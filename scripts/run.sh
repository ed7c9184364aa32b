#!/usr/bin/env bash
# Sets up, builds and serves ctxembed on its default model:
# gRPC on 127.0.0.1:50051, Prometheus metrics on 127.0.0.1:9464/metrics.
# Extra arguments go to ctxembed-server (e.g. --grpc_address=0.0.0.0:50051).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
model=var/models/ft-small
if [ ! -f "$model/config.json" ]; then
  echo "run: training the default fastText model into $model (about 25 s)"
  tools/make_fasttext_model.sh "$model.tmp"
  rm -rf "$model" && mv "$model.tmp" "$model"
fi
exec build/server/ctxembed-server --model_dir="$model" "$@"
