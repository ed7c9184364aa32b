#!/usr/bin/env bash
# Sets up, builds and serves ctxembed on its default model (models/default):
# gRPC on 127.0.0.1:50051, Prometheus metrics on 127.0.0.1:9464/metrics.
# Extra arguments go to ctxembed-server (e.g. --grpc_address=0.0.0.0:50051).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/server/ctxembed-server --model_dir=models/default "$@"
