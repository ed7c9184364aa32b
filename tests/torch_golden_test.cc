// Parity with PyTorch: the golden models of tests/golden/torch (random
// weights over a grid of LSTM/GRU encoders, made by generate.py there) must
// give PyTorch's token and sentence vectors within 1e-5 absolute or 1e-4
// relative, alone or in any batch, on every CPU level of the kernels this
// machine runs (model/kernels.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <tuple>

#include "model/kernels.h"
#include "model/model.h"
#include "model/test_data.h"
#include "tests/golden_compare.h"

namespace ctxembed {
namespace {

using Json = nlohmann::json;
using testing::ExpectClose;

struct Golden {
  std::shared_ptr<const Model> model;
  Json manifest;
  std::vector<float> data;
  size_t cursor = 0;
  // The next rows x cols floats of expected.f32, row-major.
  Eigen::MatrixXf Next(int rows, int cols) {
    Eigen::MatrixXf m(cols, rows);  // column per row of the file
    std::copy(data.begin() + cursor, data.begin() + cursor + rows * cols,
              m.data());
    cursor += static_cast<size_t>(rows) * cols;
    return m;
  }
};

Golden LoadGolden(const std::string& name) {
  const std::string dir = testing::GoldenDir() + "/torch/" + name;
  Golden g;
  auto model = Model::Load(dir);
  EXPECT_TRUE(model.ok()) << model.status();
  if (model.ok()) g.model = *model;
  std::ifstream(dir + "/expected.json") >> g.manifest;
  std::ifstream f(dir + "/expected.f32", std::ios::binary | std::ios::ate);
  g.data.resize(static_cast<size_t>(f.tellg()) / 4);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(g.data.data()), g.data.size() * 4);
  return g;
}

std::vector<TokenList> Tokenize(const Model& model, const Json& texts) {
  std::vector<TokenList> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    model.tokenizer().Tokenize(texts[i].get<std::string>(), &out[i]);
  }
  return out;
}

// Checks one tower against the next block of expected.f32.
void CheckTower(Golden& g, const Tower& tower, const Json& texts,
                const Json& tokens, const std::string& name) {
  std::vector<TokenList> sentences = Tokenize(*g.model, texts);
  for (size_t i = 0; i < sentences.size(); ++i) {
    ASSERT_EQ(Json(sentences[i]), tokens[i]) << name << ": tokenizer, " << i;
  }
  TowerScratch scratch;
  const Eigen::MatrixXf all = tower.EncodeTokens(sentences, scratch);
  for (size_t i = 0; i < sentences.size(); ++i) {
    const int len = static_cast<int>(sentences[i].size());
    Eigen::MatrixXf want = g.Next(len, tower.token_dim());
    ExpectClose(all.middleCols(scratch.batch.offset(i), len), want,
                name + " tokens of sentence " + std::to_string(i));
  }
  Eigen::MatrixXf pooled;
  tower.Embed(sentences, tower.pooling(), scratch, &pooled);
  Eigen::MatrixXf want =
      g.Next(static_cast<int>(sentences.size()), tower.output_dim());
  ExpectClose(pooled, want, name + " pooled");
}

// (golden model, kernel level): the level is set before the model loads
// (weights are packed for it) and restored after.
class TorchGoldenTest
    : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(SetDefaultKernels(std::get<1>(GetParam())).ok());
  }
  void TearDown() override { ASSERT_TRUE(SetDefaultKernels("auto").ok()); }
  static std::string Name() { return std::get<0>(GetParam()); }
};

std::vector<std::string> Levels() {
  std::vector<std::string> out;
  for (const KernelTable* k : SupportedKernels()) out.push_back(k->isa);
  return out;
}

TEST_P(TorchGoldenTest, MatchesPyTorch) {
  ASSERT_EQ(&DefaultKernels(), *FindKernels(std::get<1>(GetParam())));
  Golden g = LoadGolden(Name());
  ASSERT_NE(g.model, nullptr);
  if (g.manifest["kind"] == "single") {
    CheckTower(g, g.model->tower(0), g.manifest["texts"], g.manifest["tokens"],
               Name());
  } else {
    CheckTower(g, g.model->tower(0), g.manifest["texts"], g.manifest["tokens"],
               Name() + " enc0");
    CheckTower(g, g.model->tower(1), g.manifest["texts_b"],
               g.manifest["tokens_b"], Name() + " enc1");
    TowerScratch scratch;
    Eigen::MatrixXf u, v;
    g.model->tower(0).Embed(Tokenize(*g.model, g.manifest["texts"]),
                            Pooling::kMean, scratch, &u);
    g.model->tower(1).Embed(Tokenize(*g.model, g.manifest["texts_b"]),
                            Pooling::kMean, scratch, &v);
    ASSERT_NE(g.model->comparator(), nullptr);
    std::vector<float> scores = g.model->comparator()->Score(u, v);
    Eigen::MatrixXf want = g.Next(1, static_cast<int>(scores.size()));
    ExpectClose(Eigen::Map<Eigen::MatrixXf>(scores.data(), 1, scores.size()),
                want.transpose(), "comparator scores");
  }
  EXPECT_EQ(g.cursor, g.data.size()) << "expected.f32 not fully checked";
}

// A sentence's vectors are the same alone and in a shuffled batch of 128
// sentences of mixed lengths (padding and batch-mates never leak in).
TEST_P(TorchGoldenTest, BatchDoesNotChangeResults) {
  Golden g = LoadGolden(Name());
  ASSERT_NE(g.model, nullptr);
  const Tower& tower = g.model->tower(0);
  std::vector<TokenList> base = Tokenize(*g.model, g.manifest["texts"]);
  std::vector<TokenList> batch;
  std::vector<int> source;
  std::mt19937 rng(7);
  for (int i = 0; i < 128; ++i) {
    source.push_back(static_cast<int>(rng() % base.size()));
    batch.push_back(base[source.back()]);
  }
  TowerScratch scratch;
  Eigen::MatrixXf batched;
  tower.Embed(batch, tower.pooling(), scratch, &batched);
  const Eigen::MatrixXf batched_tokens = tower.EncodeTokens(batch, scratch);
  std::vector<int> offsets(batch.size());
  for (size_t i = 0; i < batch.size(); ++i)
    offsets[i] = scratch.batch.offset(i);
  for (size_t i = 0; i < base.size(); ++i) {
    std::vector<TokenList> one = {base[i]};
    Eigen::MatrixXf alone;
    tower.Embed(one, tower.pooling(), scratch, &alone);
    const Eigen::MatrixXf alone_tokens = tower.EncodeTokens(one, scratch);
    for (size_t k = 0; k < batch.size(); ++k) {
      if (source[k] != static_cast<int>(i)) continue;
      EXPECT_LE((batched.col(k) - alone.col(0)).cwiseAbs().maxCoeff(), 1e-6f)
          << "sentence " << i << " at batch position " << k;
      const int len = static_cast<int>(base[i].size());
      if (len > 0) {
        EXPECT_LE((batched_tokens.middleCols(offsets[k], len) - alone_tokens)
                      .cwiseAbs()
                      .maxCoeff(),
                  1e-6f);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, TorchGoldenTest,
    ::testing::Combine(::testing::Values("lstm_uni_odd", "lstm_bi_2l_last",
                                         "gru_bi_f16_max", "gru_uni_3l_proj",
                                         "sockeye_residual",
                                         "fasttext_bilstm_bf16", "bigru_2l_odd",
                                         "stack_concat_input", "dual_o2v"),
                       ::testing::ValuesIn(Levels())),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + std::get<1>(info.param);
    });

// "precision": "bf16" (the reduced-precision option): every golden model's
// sentence vectors within cosine 0.999 of its fp32 ones, on this CPU's bf16
// path (the AVX512_BF16 kernel if present, else bf16 weights on fp32).
// The reduced precisions (an opt-in per model): sentence vectors within
// cosine 0.999 of fp32 on every golden model (bf16, int8).
class ReducedPrecisionGoldenTest
    : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ReducedPrecisionGoldenTest, CloseToFp32) {
  const auto& [model, precision] = GetParam();
  const std::string dir = testing::GoldenDir() + "/torch/" + model;
  testing::TempDir low_dir;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::filesystem::copy(entry.path(), low_dir.path());
  }
  Json config;
  std::ifstream(dir + "/config.json") >> config;
  config["precision"] = precision;
  if (config["embedding"].contains("file")) {  // relative to the original
    config["embedding"]["file"] =
        dir + "/" + config["embedding"]["file"].get<std::string>();
  }
  low_dir.Write("config.json", config.dump());
  auto fp32 = Model::Load(dir);
  auto low = Model::Load(low_dir.path());
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  ASSERT_TRUE(low.ok()) << low.status();
  EXPECT_EQ(PrecisionName((*low)->config().precision), precision);
  Json manifest;
  std::ifstream(dir + "/expected.json") >> manifest;
  std::vector<TokenList> sentences = Tokenize(**fp32, manifest["texts"]);
  TowerScratch scratch;
  Eigen::MatrixXf a, b;
  const Tower& t32 = (*fp32)->tower(0);
  const Tower& tlow = (*low)->tower(0);
  t32.Embed(sentences, t32.pooling(), scratch, &a);
  tlow.Embed(sentences, tlow.pooling(), scratch, &b);
  float worst = 1.0f;
  for (int i = 0; i < a.cols(); ++i) {
    if (a.col(i).norm() == 0) continue;  // an empty sentence
    const float cosine =
        a.col(i).dot(b.col(i)) / (a.col(i).norm() * b.col(i).norm());
    worst = std::min(worst, cosine);
    EXPECT_GE(cosine, 0.999f) << model << " " << precision << " sentence " << i;
  }
  std::printf("%s %s: worst cosine to fp32 %.6f\n", model.c_str(),
              precision.c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(
    Models, ReducedPrecisionGoldenTest,
    ::testing::Combine(::testing::Values("lstm_uni_odd", "lstm_bi_2l_last",
                                         "gru_bi_f16_max", "gru_uni_3l_proj",
                                         "sockeye_residual",
                                         "fasttext_bilstm_bf16", "bigru_2l_odd",
                                         "stack_concat_input"),
                       ::testing::Values("bf16", "int8")));

}  // namespace
}  // namespace ctxembed
