// Times a model directory's encoder on synthetic batches, for
// bench/compare_torch.py (which times PyTorch on the same weights).
//
//   encoder_timer --model_dir=DIR --batch=32 --tokens=16 [--min_seconds=1]
//                 [--cpu_isa=auto|v2|v3|v4] [--lengths=5,17,...]
// --lengths gives each sentence's length (a mixed-length batch, as the
// batcher forms them) instead of --batch sentences of --tokens.
// Sentences are `tokens` words drawn from the model's vocabulary, already
// tokenized (as PyTorch gets token ids). Prints one JSON line:
// {"batch":32,"tokens":512 (in all),"ms_per_batch":..,"sentences_per_s":..,
//  "gflops":..,"iterations":..,"isa":"v4"}
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
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
ABSL_FLAG(std::vector<std::string>, lengths, {},
          "sentence lengths (overrides --batch and --tokens)");

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
  std::vector<int> lengths;
  for (const std::string& l : absl::GetFlag(FLAGS_lengths)) {
    lengths.push_back(std::stoi(l));
  }
  if (lengths.empty()) {
    lengths.assign(absl::GetFlag(FLAGS_batch), absl::GetFlag(FLAGS_tokens));
  }
  const int batch = static_cast<int>(lengths.size());
  int64_t total_tokens = 0;
  std::vector<ctxembed::TokenList> sentences(batch);
  for (int i = 0; i < batch; ++i) {
    for (int t = 0; t < lengths[i]; ++t) {
      sentences[i].push_back(vocab[rng() % vocab.size()]);
    }
    total_tokens += lengths[i];
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
    flops += m->Flops(total_tokens);
  }
  if (tower.transformer() != nullptr) {
    flops += tower.transformer()->Flops(lengths);
  }
  std::printf(
      "{\"batch\":%d,\"tokens\":%lld,\"ms_per_batch\":%.4f,"
      "\"sentences_per_s\":%.1f,\"gflops\":%.2f,\"iterations\":%zu,"
      "\"isa\":\"%s\"}\n",
      batch, static_cast<long long>(total_tokens), median * 1e3, batch / median,
      flops / median / 1e9, times.size(), ctxembed::DefaultKernels().isa);
  return 0;
}
