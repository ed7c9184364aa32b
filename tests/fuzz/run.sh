#!/usr/bin/env bash
# Runs every libFuzzer target of build-fuzz/ for SECONDS each (default 5),
# from the committed seeds and the test fixtures, in a fresh working corpus.
# Any crash, leak, sanitizer report or timeout fails (the reproducer is
# left in build-fuzz/fuzz-work/<target>/ for a regression test).
#
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-5}
build=${2:-build-fuzz}
seeds=tests/fuzz/seeds
golden=tests/golden
join() { local IFS=,; echo "$*"; }

declare -A inputs dicts
inputs[fasttext_bin]=$(join $golden/models/sg_minn1/vectors.bin $golden/models/sg_nosub/vectors.bin)
inputs[vec_text]=$(join $seeds/vec_text.vec)
inputs[word2vec_bin]=$(join $seeds/word2vec.bin)
inputs[word_vectors]=$(join $seeds/vec_text.vec $seeds/word2vec.bin $golden/models/sg_minn1/vectors.bin)
inputs[safetensors]=$(join $golden/torch/fasttext_bilstm_bf16/model.safetensors $golden/torch/gru_bi_f16_max/model.safetensors)
inputs[config]=$(join $golden/models/sg_d8/config.json $golden/torch/*/config.json)
inputs[tokenizer]=$(join $seeds/text.txt)
inputs[request]=$(join $seeds/embed_request.pb $seeds/score_request.pb)
inputs[http_body]=$(join $seeds/openai_body.json $seeds/tei_body.json)
dicts[config]=tests/fuzz/config.dict

for target in fasttext_bin vec_text word2vec_bin word_vectors safetensors \
              config tokenizer request http_body; do
  work="$build/fuzz-work/$target"
  rm -rf "$work" && mkdir -p "$work"
  seed_inputs=${inputs[$target]}
  # Every input a fuzzer once failed on, too.
  for f in tests/fuzz/regressions/"$target"/*; do
    [ -f "$f" ] && [ "${f##*.}" != expected ] && seed_inputs+=",$f"
  done
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
        -seed_inputs="$seed_inputs" -artifact_prefix="$work/"
        -print_final_stats=1)
  [ -n "${dicts[$target]:-}" ] && args+=(-dict="${dicts[$target]}")
  log="$work.log"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      "$build/tests/fuzz/${target}_fuzzer" "${args[@]}" "$work" > "$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $target FAILED (reproducer in $work/)"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  echo "fuzz: $target clean: $runs runs in ${seconds}s, coverage $cov edges"
done
