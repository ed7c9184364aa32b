// Times a model directory's encoder on synthetic batches, for
// bench/compare_torch.py (which times PyTorch on the same weights).
//
//   encoder_timer --model_dir=DIR --batch=32 --tokens=16 [--min_seconds=1]
//                 [--cpu_isa=auto|v2|v3|v4]
// Sentences are `tokens` words drawn from the model's vocabulary, already
// tokenized (as PyTorch gets token ids). Prints one JSON line:
// {"batch":32,"tokens":16,"ms_per_batch":..,"sentences_per_s":..,
//  "gflops":..,"iterations":..}
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "model/kernels.h"
#include "model/model.h"

ABSL_FLAG(std::string, model_dir, "", "model directory");
ABSL_FLAG(int, batch, 32, "sentences per batch");
ABSL_FLAG(int, tokens, 16, "tokens per sentence");
ABSL_FLAG(double, min_seconds, 1.0, "measure at least this long");
ABSL_FLAG(std::string, cpu_isa, "auto", "kernel level (model/kernels.h)");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_model_dir);
  if (absl::Status isa =
          ctxembed::SetDefaultKernels(absl::GetFlag(FLAGS_cpu_isa));
      !isa.ok()) {
    std::fprintf(stderr, "%s\n", isa.ToString().c_str());
    return 1;
  }
  auto model = ctxembed::Model::Load(dir);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  std::vector<std::string> vocab;
  std::ifstream in(dir + "/vocab.txt");
  for (std::string line; std::getline(in, line);) vocab.push_back(line);
  if (vocab.empty()) vocab.push_back("x");
  std::mt19937 rng(1);
  const int batch = absl::GetFlag(FLAGS_batch),
            tokens = absl::GetFlag(FLAGS_tokens);
  std::vector<ctxembed::TokenList> sentences(batch);
  for (auto& s : sentences) {
    for (int t = 0; t < tokens; ++t) s.push_back(vocab[rng() % vocab.size()]);
  }
  const ctxembed::Tower& tower = (*model)->tower(0);
  ctxembed::TowerScratch scratch;
  Eigen::MatrixXf out;
  for (int i = 0; i < 3; ++i)
    tower.Embed(sentences, tower.pooling(), scratch, &out);
  std::vector<double> times;
  const auto begin = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < absl::GetFlag(FLAGS_min_seconds) || times.size() < 5) {
    const auto start = std::chrono::steady_clock::now();
    tower.Embed(sentences, tower.pooling(), scratch, &out);
    const auto end = std::chrono::steady_clock::now();
    times.push_back(std::chrono::duration<double>(end - start).count());
    elapsed = std::chrono::duration<double>(end - begin).count();
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  double flops = 0;
  for (const auto& m : tower.modules()) {
    flops += m->Flops(static_cast<int64_t>(batch) * tokens);
  }
  std::printf(
      "{\"batch\":%d,\"tokens\":%d,\"ms_per_batch\":%.4f,"
      "\"sentences_per_s\":%.1f,\"gflops\":%.2f,\"iterations\":%zu}\n",
      batch, tokens, median * 1e3, batch / median, flops / median / 1e9,
      times.size());
  return 0;
}
