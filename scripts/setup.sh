#!/usr/bin/env bash
# Installs what ctxembed needs (Debian 12 packages only) and builds it.
# Idempotent: when every package is present it skips apt entirely, and the
# build is incremental (ccache makes a clean rebuild quick too).
#
#   scripts/setup.sh            # packages + Release build in build/
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  g++ cmake pkg-config ccache make libgrpc++-dev protobuf-compiler-grpc
  libprotobuf-dev protobuf-compiler libeigen3-dev libabsl-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev
  libssl-dev
  # the HTTP front door: Boost.Beast (Asio), simdjson; ICU for BERT's
  # tokenizer
  libboost-dev libsimdjson-dev libicu-dev
  # the lock analysis, formatting and the fuzzers (clang, libFuzzer)
  clang clang-format libclang-rt-14-dev
  # tests, tools and the default model
  python3 python3-grpcio python3-protobuf python3-numpy python3-fasttext
  python3-torch libopenblas0-pthread grpc-proto fasttext wordnet-base
  prometheus curl yamllint openssl
)
# Node.js validates the Kubernetes manifests (npm package kubernetes-models);
# a machine that already has node (and npm) keeps its own.
command -v npm > /dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"
fi

if [ ! -d deploy/validate/node_modules ]; then
  (cd deploy/validate && npm ci --no-audit --no-fund --loglevel=error)
fi
# The official OpenAI Node.js SDK, a client the HTTP tests did not write,
# and @huggingface/transformers, the tokenizer BERT models are checked
# against. --ignore-scripts: their install scripts would fetch binaries
# (GPU builds, image codecs) the tests do not use and cannot reach.
if [ ! -d tests/node/node_modules/@huggingface/transformers ] ||
   [ ! -d tests/node/node_modules/openai ]; then
  (cd tests/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

export CCACHE_BASEDIR="$PWD"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > build.log 2>&1 ||
    { cat build.log; exit 1; }
  rm -f build.log
fi
cmake --build build -j"$(nproc)"
