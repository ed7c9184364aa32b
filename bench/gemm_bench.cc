// The packed GEMM (model/kernel_table.h) alone, one thread, on the shapes
// the encoders multiply: an LSTM's recurrent step (4H x H against the
// batch's states), its input projection (4H x I against every token), and
// the transformer's dense layers. Reports GFLOP/s (2 flops per
// multiply-add) per kernel level this CPU runs, and for the bf16 and int8
// kernels where it has them. Also the LSTM and GRU cells (units/ns: hidden
// units updated per nanosecond).
//
//   build/bench/gemm_bench [--benchmark_filter=v4/]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "model/kernels.h"
#include "model/packed_matrix.h"
#include "model/recurrent_module.h"

namespace ctxembed {
namespace {

// W packed once by PackedMatrix (the encoders' own path) for the kernel
// level and precision, then W x timed. The output's columns are `ldo`
// floats apart. With `alternate`, W's rows are read in alternating order
// from one product to the next, as the recurrent step reads W_hh.
void BM_Gemm(benchmark::State& state, const KernelTable* k, Precision precision,
             int rows, int cols, int n, int ldo, bool alternate) {
  const Eigen::MatrixXf w = Eigen::MatrixXf::Random(rows, cols);
  const PackedMatrix packed(w, *k, precision);
  const Eigen::MatrixXf x = Eigen::MatrixXf::Random(cols, n);
  Eigen::MatrixXf out = Eigen::MatrixXf::Zero(ldo, n);
  Eigen::VectorXf scratch;
  int64_t pass = 0;
  for (auto _ : state) {
    packed.MultiplyAdd(
        x, out.topRows(rows), scratch,
        alternate ? AlternatingRowOrder(pass++) : RowOrder::kForward);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * rows * cols * n * state.iterations(), benchmark::Counter::kIsRate,
      benchmark::Counter::kIs1000);
}

// One recurrent cell step (the element-wise part between two recurrent
// GEMMs) over the batch's columns, gates drawn from [-3, 3].
void BM_Cell(benchmark::State& state, const KernelTable* k, bool lstm,
             int hidden, int b) {
  const int gates = (lstm ? 4 : 3) * hidden;
  const Eigen::MatrixXf gi = Eigen::MatrixXf::Random(gates, b) * 3;
  const Eigen::MatrixXf gh = Eigen::MatrixXf::Random(gates, b) * 3;
  Eigen::MatrixXf c = Eigen::MatrixXf::Random(hidden, b);
  Eigen::MatrixXf h = Eigen::MatrixXf::Random(hidden, b);
  for (auto _ : state) {
    if (lstm) {
      k->lstm_cell(gi.data(), gates, c.data(), h.data(), hidden, hidden, b);
    } else {
      k->gru_cell(gi.data(), gh.data(), gates, h.data(), hidden, hidden, b,
                  false);
    }
    benchmark::DoNotOptimize(h.data());
    benchmark::ClobberMemory();
  }
  state.counters["units/ns"] = benchmark::Counter(
      1.0 * hidden * b * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

struct Shape {
  const char* name;
  int rows, cols, n;
  // Columns of the output padded as the recurrent encoder pads its gates
  // (model/recurrent_module.h GateStride), or packed.
  bool gates;
  // A recurrent step's W_hh: rows read in alternating order (RowOrder).
  bool step;
};

constexpr Shape kShapes[] = {
    {"lstm_step_h256_b1", 1024, 256, 1, true, true},
    {"lstm_step_h256_b8", 1024, 256, 8, true, true},
    {"lstm_step_h256_b32", 1024, 256, 32, true, true},
    {"lstm_step_h256_b128", 1024, 256, 128, true, true},
    {"lstm_proj_i100_t512", 1024, 100, 512, true, false},
    {"lstm_proj_i300_t512", 1024, 300, 512, true, false},
    {"lstm_proj_i100_t2048", 1024, 100, 2048, true, false},
    {"bert_qkv_t512", 1152, 384, 512, false, false},
    {"bert_ffn_in_t512", 1536, 384, 512, false, false},
    {"bert_ffn_out_t512", 384, 1536, 512, false, false},
    {"bert_ffn_in_t16", 1536, 384, 16, false, false},
};

int Register() {
  auto add = [](const std::string& prefix, const KernelTable* k,
                Precision precision) {
    for (const Shape& s : kShapes) {
      benchmark::RegisterBenchmark(
          (prefix + "/" + s.name).c_str(), BM_Gemm, k, precision, s.rows,
          s.cols, s.n, s.gates ? GateStride(s.rows) : s.rows, s.step);
    }
  };
  for (const KernelTable* k : SupportedKernels()) {
    add(k->isa, k, Precision::kFp32);
    benchmark::RegisterBenchmark(
        (std::string(k->isa) + "/lstm_cell_h256_b32").c_str(), BM_Cell, k, true,
        256, 32);
    benchmark::RegisterBenchmark(
        (std::string(k->isa) + "/gru_cell_h256_b32").c_str(), BM_Cell, k, false,
        256, 32);
  }
  // The reduced-precision kernels this CPU runs (multiply-adds counted as
  // in fp32, so the rates compare directly).
  if (Bf16GemmIfSupported() != nullptr) {
    add("bf16", &DefaultKernels(), Precision::kBf16);
  }
  if (Int8GemmIfSupported(DefaultKernels()) != nullptr) {
    add("int8", &DefaultKernels(), Precision::kInt8);
  }
  return 0;
}
const int kRegistered = Register();

}  // namespace
}  // namespace ctxembed

BENCHMARK_MAIN();
