// Micro-benchmarks of the model layer: word-vector lookup (in and out of the
// vocabulary, with n-grams) and whole-sentence embedding.
//
//   build/bench/model_bench [--benchmark_min_time=0.1]
// Model: $CTXEMBED_BENCH_MODEL, else the default model (models/default),
// else the golden sg_d8 model.
#include <benchmark/benchmark.h>
#include <sys/stat.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "model/model.h"

namespace ctxembed {
namespace {

std::string ModelDir() {
  if (const char* dir = std::getenv("CTXEMBED_BENCH_MODEL")) return dir;
  struct stat st;
  if (stat(CTXEMBED_SOURCE_DIR "/models/default/config.json", &st) == 0) {
    return CTXEMBED_SOURCE_DIR "/models/default";
  }
  return CTXEMBED_SOURCE_DIR "/tests/golden/models/sg_d8";
}

const Model& TheModel() {
  static const std::shared_ptr<const Model> model = [] {
    auto m = Model::Load(ModelDir());
    if (!m.ok()) {
      std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
      std::abort();
    }
    return *m;
  }();
  return *model;
}

void BM_LookupInVocabulary(benchmark::State& state) {
  const Model& m = TheModel();
  std::vector<float> out(m.word_vectors().dim());
  for (auto _ : state) {
    m.word_vectors().Lookup("definition", out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(absl::StrCat("dim ", m.word_vectors().dim()));
}
BENCHMARK(BM_LookupInVocabulary);

void BM_LookupOutOfVocabulary(benchmark::State& state) {
  const Model& m = TheModel();
  std::vector<float> out(m.word_vectors().dim());
  for (auto _ : state) {
    m.word_vectors().Lookup("unfathomablenessful", out.data());
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_LookupOutOfVocabulary);

// A 16-token sentence: tokenize, look up, encode, pool (the model's own).
void BM_EmbedSentence16(benchmark::State& state) {
  const Model& m = TheModel();
  const std::string text =
      "a kind of small plant that grows in shallow water near the river bank "
      "in spring";
  std::vector<TokenList> sentences(1);
  TowerScratch scratch;
  Eigen::MatrixXf pooled;
  for (auto _ : state) {
    m.tokenizer().Tokenize(text, &sentences[0]);
    m.tower(0).Embed(sentences, m.pooling(), scratch, &pooled);
    benchmark::DoNotOptimize(pooled.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EmbedSentence16);

}  // namespace
}  // namespace ctxembed

BENCHMARK_MAIN();
