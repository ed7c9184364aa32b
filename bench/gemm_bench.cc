// The packed GEMM (model/kernel_table.h) alone, one thread, on the shapes
// the encoders multiply: an LSTM's recurrent step (4H x H against the
// batch's states), its input projection (4H x I against every token), and
// the transformer's dense layers. Reports GFLOP/s (2 flops per
// multiply-add) per kernel level this CPU runs, and for the bf16 and int8
// kernels where it has them.
//
//   build/bench/gemm_bench [--benchmark_filter=v4/]
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "model/kernels.h"

namespace ctxembed {
namespace {

void BM_Gemm(benchmark::State& state, const KernelTable* k, int rows, int cols,
             int n) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(rows) * cols);
  for (float& v : w) v = u(rng);
  std::vector<float> packed(k->packed_floats(rows, cols));
  k->pack(w.data(), cols, 1, rows, cols, packed.data());
  std::vector<float> x(static_cast<size_t>(cols) * n);
  for (float& v : x) v = u(rng);
  std::vector<float> out(static_cast<size_t>(rows) * n);
  std::vector<float> scratch(k->gemm_scratch_floats(cols, n));
  for (auto _ : state) {
    k->gemm(packed.data(), rows, cols, x.data(), cols, n, out.data(), rows,
            nullptr, scratch.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * rows * cols * n * state.iterations(), benchmark::Counter::kIsRate,
      benchmark::Counter::kIs1000);
}

// The same for a reduced-precision kernel (bf16 or int8), packed from the
// same fp32 weights.
void BM_ReducedGemm(benchmark::State& state, const ReducedGemm* k, int rows,
                    int cols, int n) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(rows) * cols);
  for (float& v : w) v = u(rng);
  std::vector<char> packed(k->packed_bytes(rows, cols));
  k->pack(w.data(), cols, 1, rows, cols, packed.data());
  std::vector<float> x(static_cast<size_t>(cols) * n);
  for (float& v : x) v = u(rng);
  std::vector<float> out(static_cast<size_t>(rows) * n);
  std::vector<char> scratch(k->scratch_bytes(cols, n));
  for (auto _ : state) {
    k->gemm(packed.data(), rows, cols, x.data(), cols, n, out.data(), rows,
            nullptr, scratch.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * rows * cols * n * state.iterations(), benchmark::Counter::kIsRate,
      benchmark::Counter::kIs1000);
}

struct Shape {
  const char* name;
  int rows, cols, n;
};

constexpr Shape kShapes[] = {
    {"lstm_step_h256_b1", 1024, 256, 1},
    {"lstm_step_h256_b8", 1024, 256, 8},
    {"lstm_step_h256_b32", 1024, 256, 32},
    {"lstm_step_h256_b128", 1024, 256, 128},
    {"lstm_proj_i100_t512", 1024, 100, 512},
    {"lstm_proj_i300_t512", 1024, 300, 512},
    {"lstm_proj_i100_t2048", 1024, 100, 2048},
    {"bert_qkv_t512", 1152, 384, 512},
    {"bert_ffn_in_t512", 1536, 384, 512},
    {"bert_ffn_out_t512", 384, 1536, 512},
    {"bert_ffn_in_t16", 1536, 384, 16},
};

int Register() {
  for (const KernelTable* k : SupportedKernels()) {
    for (const Shape& s : kShapes) {
      benchmark::RegisterBenchmark((std::string(k->isa) + "/" + s.name).c_str(),
                                   BM_Gemm, k, s.rows, s.cols, s.n);
    }
  }
  // The reduced-precision kernels this CPU runs (multiply-adds counted as
  // in fp32, so the rates compare directly).
  const std::pair<const char*, const ReducedGemm*> reduced[] = {
      {"bf16", Bf16GemmIfSupported()},
      {"int8", Int8GemmIfSupported(DefaultKernels())}};
  for (const auto& [name, k] : reduced) {
    if (k == nullptr) continue;
    for (const Shape& s : kShapes) {
      benchmark::RegisterBenchmark((std::string(name) + "/" + s.name).c_str(),
                                   BM_ReducedGemm, k, s.rows, s.cols, s.n);
    }
  }
  return 0;
}
const int kRegistered = Register();

}  // namespace
}  // namespace ctxembed

BENCHMARK_MAIN();
