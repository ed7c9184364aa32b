#!/usr/bin/env bash
# Sets up, builds and runs every ctxembed test (unit, golden parity with
# fastText and PyTorch, end to end, independent Python grpcio clients,
# deploy checks, a real Prometheus), then the C++ tests once more under
# AddressSanitizer and UndefinedBehaviorSanitizer with Eigen's bounds checks
# on (build-asan/; ccache makes the second build cheap after the first).
# That pass includes the stream stress test (e2e_test). Then the scheduler's
# tests under ThreadSanitizer (build-tsan/), the lock annotations checked by
# clang's -Wthread-safety (build-clang/), a short run of every fuzzer
# (build-fuzz/), and the formatting by clang-format.
# Extra arguments go to the first ctest run (e.g. -R golden).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
(cd build && ctest --output-on-failure -j"$(nproc)" "$@")
if [ $# -gt 0 ]; then exit 0; fi

export CCACHE_BASEDIR="$PWD"
# configure DIR CMAKE_ARGS...: configures build tree DIR once, quietly
# (its log is shown only if CMake fails).
configure() {
  local dir=$1
  shift
  [ -f "$dir/CMakeCache.txt" ] && return 0
  cmake -S . -B "$dir" "$@" > "$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
  rm -f "$dir.log"
}

configure build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCTXEMBED_BUILD_BENCH=OFF
cmake --build build-asan -j"$(nproc)" > /dev/null
# gRPC keeps some allocations until exit: leaks are not what this pass hunts.
(cd build-asan && ASAN_OPTIONS=detect_leaks=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$(nproc)" -E '^python\.')


# ThreadSanitizer: the scheduler, batcher and shutdown tests, the scheduler
# stress test, the unary calls' JobGroup stress test, ParallelRunner with
# several callers (model/parallel_runner_test), and the EmbedStream
# reactor's stress test against a fake gRPC stream
# (server/embed_stream_test.cc). Our locks are visible to TSan
# through scheduling/mutex.h; a real gRPC channel is not (Debian's gRPC is
# not built with TSan), which is why the stream test fakes the transport.
configure build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -fsanitize=thread" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" \
  -DCTXEMBED_BUILD_BENCH=OFF
tsan_tests=(scheduling/batch_queue_test scheduling/batcher_test
            scheduling/scheduler_test scheduling/scheduler_stress_test
            server/embed_stream_test server/connection_limit_test
            server/job_group_test model/parallel_runner_test)
cmake --build build-tsan -j"$(nproc)" --target "${tsan_tests[@]##*/}" > /dev/null
for t in "${tsan_tests[@]}"; do
  echo "tsan: $t"
  log="build-tsan/${t##*/}.log"
  CTXEMBED_SOURCE_DIR="$PWD" \
    TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/tsan.supp" "build-tsan/$t" \
    > "$log" 2>&1 || { cat "$log"; exit 1; }
done

# clang's lock analysis over every layer with locks (an unannotated access
# to guarded state fails the build).
configure build-clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS="-Wthread-safety -Werror=thread-safety" \
  -DCTXEMBED_BUILD_BENCH=OFF -DCTXEMBED_BUILD_TESTS=OFF
cmake --build build-clang -j"$(nproc)" --target ctxembed-server ctxembed-cli > /dev/null
echo "clang -Wthread-safety: clean"

# libFuzzer: every parser of untrusted bytes for a few seconds each, from
# the seeds and every past reproducer (tests/fuzz/run.sh; docs/fuzzing.md).
configure build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
  -DCTXEMBED_BUILD_TESTS=OFF -DCTXEMBED_BUILD_BENCH=OFF -DCTXEMBED_FUZZ=ON
fuzzers=(fasttext_bin vec_text word2vec_bin word_vectors safetensors config
         tokenizer request http_body)
cmake --build build-fuzz -j"$(nproc)" --target "${fuzzers[@]/%/_fuzzer}" > /dev/null
tests/fuzz/run.sh 5 build-fuzz

# Formatting (.clang-format: Google style).
git ls-files '*.cc' '*.h' | xargs clang-format --dry-run --Werror
echo "clang-format: clean"
