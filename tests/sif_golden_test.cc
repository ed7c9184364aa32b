// Parity of "sif" pooling with an independent NumPy implementation over
// fastText's own word vectors and counts, and over PyTorch's bi-LSTM token
// vectors (tests/golden/sif/generate.py writes the cases and the expected
// vectors): within 1e-5 absolute or 1e-4 relative, alone or batched.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "model/test_data.h"
#include "tests/golden_compare.h"

namespace ctxembed {
namespace {

using testing::ExpectClose;

struct Case {
  std::shared_ptr<const Model> model;
  std::vector<TokenList> sentences;
  Eigen::MatrixXf expected;  // dim x sentences
};

Case LoadCase(const std::string& name) {
  const std::string dir = testing::GoldenDir() + "/sif/" + name;
  Case c;
  auto model = Model::Load(dir);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return c;
  c.model = *model;
  nlohmann::json manifest;
  std::ifstream(dir + "/expected.json") >> manifest;
  for (const auto& text : manifest["texts"]) {
    c.sentences.emplace_back();
    c.model->tokenizer().Tokenize(text.get<std::string>(), &c.sentences.back());
  }
  const int dim = manifest["dim"].get<int>();
  c.expected.resize(dim, static_cast<Eigen::Index>(c.sentences.size()));
  std::ifstream f(dir + "/expected.f32", std::ios::binary);
  f.read(reinterpret_cast<char*>(c.expected.data()),
         static_cast<std::streamsize>(c.expected.size() * sizeof(float)));
  EXPECT_TRUE(f) << dir << "/expected.f32 is shorter than expected";
  return c;
}

class SifGoldenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SifGoldenTest, MatchesNumPyBatchedAndAlone) {
  Case c = LoadCase(GetParam());
  ASSERT_NE(c.model, nullptr);
  const Tower& tower = c.model->tower(0);
  EXPECT_EQ(c.model->pooling(), Pooling::kSif);
  ASSERT_TRUE(tower.supports_sif());
  TowerScratch scratch;
  Eigen::MatrixXf got;
  tower.Embed(c.sentences, Pooling::kSif, scratch, &got);
  ExpectClose(got, c.expected, GetParam());
  for (size_t i = 0; i < c.sentences.size(); ++i) {
    Eigen::MatrixXf one;
    tower.Embed(absl::MakeConstSpan(&c.sentences[i], 1), Pooling::kSif, scratch,
                &one);
    ExpectClose(one, c.expected.col(static_cast<Eigen::Index>(i)),
                std::string(GetParam()) + " alone");
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, SifGoldenTest,
                         ::testing::Values("bag_bin", "bag_vec", "bilstm"));

}  // namespace
}  // namespace ctxembed
