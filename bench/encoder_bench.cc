// Google Benchmark cases for the recurrent encoder kernels: a bidirectional
// LSTM, hidden 256, over a batch of equal-length sentences.
//
//   build/bench/encoder_bench [--benchmark_filter=...]
//   [--benchmark_min_time=0.2]
// Arguments: input size, layers, batch, tokens. Counters: sentences/s and
// GFLOP/s (2 flops per multiply-add of the GEMMs). bench/compare_torch.py
// runs the PyTorch comparison on the same weights.
#include <benchmark/benchmark.h>

#include "bench/random_weights.h"
#include "model/recurrent_module.h"

namespace ctxembed {
namespace {

void BM_BiLstm256(benchmark::State& state) {
  RecurrentConfig config{.kind = RecurrentKind::kLstm,
                         .prefix = "rnn",
                         .input_size = static_cast<int>(state.range(0)),
                         .hidden_size = 256,
                         .num_layers = static_cast<int>(state.range(1)),
                         .bidirectional = true};
  const int batch_size = static_cast<int>(state.range(2));
  const int tokens = static_cast<int>(state.range(3));
  const std::string bytes = bench::RandomWeights(config);
  auto weights = SafeTensors::Parse(bytes, "random");
  auto module = RecurrentModule::Create(config, **weights);
  if (!module.ok()) {
    state.SkipWithError(module.status().ToString().c_str());
    return;
  }
  SequenceBatch batch;
  batch.Reset(std::vector<int>(batch_size, tokens));
  Eigen::MatrixXf x =
      Eigen::MatrixXf::Random(config.input_size, batch_size * tokens);
  Eigen::MatrixXf y;
  RecurrentScratch scratch;
  for (auto _ : state) {
    (*module)->Forward(x, batch, scratch, &y, nullptr);
    benchmark::DoNotOptimize(y.data());
  }
  const double flops =
      (*module)->Flops(static_cast<int64_t>(batch_size) * tokens);
  state.counters["sentences/s"] =
      benchmark::Counter(static_cast<double>(batch_size),
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_BiLstm256)
    ->ArgNames({"input", "layers", "batch", "tokens"})
    ->ArgsProduct({{100, 300}, {1, 2}, {1, 8, 32, 128}, {16, 64}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace ctxembed

BENCHMARK_MAIN();
