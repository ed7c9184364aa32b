#!/usr/bin/env bash
# Sets up, builds and runs every ctxembed test (unit, golden parity with
# fastText and PyTorch, end to end, independent Python grpcio clients,
# deploy checks, a real Prometheus), then the C++ tests once more under
# AddressSanitizer and UndefinedBehaviorSanitizer with Eigen's bounds checks
# on (build-asan/; ccache makes the second build cheap after the first).
# That pass includes the stream stress test (e2e_test). No ThreadSanitizer
# pass yet: Debian's abseil and gRPC are not built with TSan, so it reports
# every absl::Mutex-protected access as a race.
# Extra arguments go to the first ctest run (e.g. -R golden).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
(cd build && ctest --output-on-failure -j"$(nproc)" "$@")
if [ $# -gt 0 ]; then exit 0; fi

export CCACHE_BASEDIR="$PWD"
if [ ! -f build-asan/CMakeCache.txt ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCTXEMBED_BUILD_BENCH=OFF > build-asan.log 2>&1 || { cat build-asan.log; exit 1; }
  rm -f build-asan.log
fi
cmake --build build-asan -j"$(nproc)" > /dev/null
# gRPC keeps some allocations until exit: leaks are not what this pass hunts.
(cd build-asan && ASAN_OPTIONS=detect_leaks=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$(nproc)" -E '^python\.')

