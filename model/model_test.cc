#include "model/model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "model/test_data.h"

namespace ctxembed {
namespace {

using ::testing::HasSubstr;

TEST(ModelTest, LoadsAGoldenModelDirectory) {
  auto m = Model::Load(testing::GoldenDir() + "/models/sg_d8");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->name(), "sg_d8");
  EXPECT_EQ((*m)->dim(), 8);
  EXPECT_EQ((*m)->max_tokens(), 64);
  EXPECT_EQ((*m)->pooling(), Pooling::kFastText);
  EXPECT_EQ((*m)->architecture(), "bag_of_vectors");

  std::vector<TokenList> sentences(1);
  (*m)->tokenizer().Tokenize("the dog the", &sentences[0]);
  TowerScratch scratch;
  const Eigen::MatrixXf& vectors =
      (*m)->tower(0).EncodeTokens(sentences, scratch);
  ASSERT_EQ(vectors.rows(), 8);
  ASSERT_EQ(vectors.cols(), 3);
  // A bag of vectors: the same word has the same vector wherever it stands.
  EXPECT_EQ(vectors.col(0), vectors.col(2));
  EXPECT_NE(vectors.col(0), vectors.col(1));
}

using testing::TempDir;

TEST(ModelTest, LoadErrorsNameTheFile) {
  TempDir dir;
  auto m = Model::Load(dir.path());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(m.status().ToString(), HasSubstr("config.json"));

  dir.Write("config.json", R"({"ctxembed_format": 1, "name": "m",
      "embedding": {"kind": "fasttext", "file": "missing.bin"}})");
  m = Model::Load(dir.path());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(m.status().ToString(), HasSubstr("missing.bin"));

  dir.Write("config.json", R"({"ctxembed_format": 1, "name": "m",
      "embedding": {"kind": "fasttext", "file": "v.vec"}})");
  dir.Write("v.vec", "1 2\nword 1\n");
  m = Model::Load(dir.path());
  EXPECT_THAT(m.status().ToString(), HasSubstr("v.vec: line 2"));
}

}  // namespace
}  // namespace ctxembed
