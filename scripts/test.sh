#!/usr/bin/env bash
# Sets up, builds and runs every ctxembed test (unit, golden parity with
# fastText, end to end, independent Python grpcio clients, Prometheus
# exposition checks).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
ctest --output-on-failure -j"$(nproc)" "$@"
