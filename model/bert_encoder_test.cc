#include "model/bert_encoder.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/bert_test_util.h"

namespace ctxembed {
namespace {

using testing::SmallBertConfig;
using testing::SmallBertWeights;

Eigen::MatrixXf Forward(const BertEncoder& e, const std::vector<int>& lengths,
                        const Eigen::MatrixXf& words, BertScratch& scratch) {
  SequenceBatch batch;
  batch.Reset(lengths);
  Eigen::MatrixXf x = words;
  e.Forward(batch, scratch, &x);
  return x;
}

// With a fresh scratch.
Eigen::MatrixXf Forward(const BertEncoder& e, const std::vector<int>& lengths,
                        const Eigen::MatrixXf& words) {
  BertScratch scratch;
  return Forward(e, lengths, words, scratch);
}

// A small random encoder.
class SmallEncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bytes_ = SmallBertWeights(SmallBertConfig());
    auto weights = SafeTensors::Parse(bytes_, "random");
    ASSERT_TRUE(weights.ok()) << weights.status();
    weights_ = *std::move(weights);
    auto encoder = BertEncoder::Create(SmallBertConfig(), *weights_);
    ASSERT_TRUE(encoder.ok()) << encoder.status();
    encoder_ = *std::move(encoder);
  }
  Eigen::MatrixXf Encode(const std::vector<int>& lengths,
                         const Eigen::MatrixXf& words) const {
    return Forward(*encoder_, lengths, words);
  }

  std::string bytes_;
  std::unique_ptr<SafeTensors> weights_;
  std::unique_ptr<BertEncoder> encoder_;
};

TEST_F(SmallEncoderTest, ASentenceGetsTheSameVectorsInAnyBatch) {
  const Eigen::MatrixXf words = Eigen::MatrixXf::Random(16, 3 + 17 + 1);
  const Eigen::MatrixXf batch = Encode({3, 17, 1}, words);
  const Eigen::MatrixXf a = Encode({3}, words.leftCols(3));
  const Eigen::MatrixXf b = Encode({17}, words.middleCols(3, 17));
  const Eigen::MatrixXf d = Encode({1}, words.rightCols(1));
  EXPECT_LT((batch.leftCols(3) - a).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_LT((batch.middleCols(3, 17) - b).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_LT((batch.rightCols(1) - d).cwiseAbs().maxCoeff(), 1e-6);
  // Post-LayerNorm output: finite, and order matters (positions).
  EXPECT_TRUE(batch.allFinite());
  Eigen::MatrixXf swapped = words.leftCols(3);
  swapped.col(0).swap(swapped.col(2));
  const Eigen::MatrixXf s = Encode({3}, swapped);
  EXPECT_GT((s.col(0) - a.col(2)).cwiseAbs().maxCoeff(), 1e-3);
}

// A thread's scratch serves batches of every size in turn (its buffers only
// grow, and are used through their first columns): each batch's vectors
// are exactly those of a fresh scratch.
TEST_F(SmallEncoderTest, ReusedScratchGivesTheVectorsOfAFreshOne) {
  BertScratch scratch;
  for (const std::vector<int>& lengths : std::vector<std::vector<int>>{
           {5, 17, 9}, {3}, {40, 2, 40, 7}, {1, 1}, {12, 30}}) {
    int total = 0;
    for (int len : lengths) total += len;
    const Eigen::MatrixXf words = Eigen::MatrixXf::Random(16, total);
    EXPECT_EQ(Forward(*encoder_, lengths, words, scratch),
              Encode(lengths, words))
        << total << " tokens";
  }
}

// Enough tokens that the dense layers split columns between the cores and
// attention runs in two halves of the heads.
TEST_F(SmallEncoderTest, LargeBatchesAgreeWithEachSentenceAlone) {
  std::vector<int> lengths;
  int total = 0;
  for (int i = 0; total < 300; ++i) {
    lengths.push_back(1 + (i * 7) % 20);
    total += lengths.back();
  }
  const Eigen::MatrixXf words = Eigen::MatrixXf::Random(16, total);
  const Eigen::MatrixXf batch = Encode(lengths, words);
  int off = 0;
  for (int len : lengths) {
    const Eigen::MatrixXf alone = Encode({len}, words.middleCols(off, len));
    EXPECT_LT((batch.middleCols(off, len) - alone).cwiseAbs().maxCoeff(), 1e-5);
    off += len;
  }
}

// bf16 weights (the opt-in "precision"): every token vector within cosine
// 0.999 of fp32's, and a sentence's vectors still do not depend on its
// batch, whether the dense layers split rows (few tokens) or columns.
TEST_F(SmallEncoderTest, Bf16StaysCloseToFp32AndIndependentOfTheBatch) {
  BertConfig c = SmallBertConfig();
  c.precision = Precision::kBf16;
  auto bf16 = BertEncoder::Create(c, *weights_);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  std::vector<int> lengths;
  int total = 0;
  for (int i = 0; total < 300; ++i) {
    lengths.push_back(1 + (i * 5) % 23);
    total += lengths.back();
  }
  const Eigen::MatrixXf words = Eigen::MatrixXf::Random(16, total);
  const Eigen::MatrixXf fp32 = Encode(lengths, words);
  const Eigen::MatrixXf low = Forward(**bf16, lengths, words);
  ASSERT_TRUE(low.allFinite());
  float worst = 1.0f;
  for (int j = 0; j < total; ++j) {
    worst =
        std::min(worst, fp32.col(j).normalized().dot(low.col(j).normalized()));
  }
  EXPECT_GT(worst, 0.999f);
  EXPECT_GT((low - fp32).cwiseAbs().maxCoeff(), 0.0f);  // bf16 did run
  int off = 0;
  for (int len : lengths) {
    const Eigen::MatrixXf alone =
        Forward(**bf16, {len}, words.middleCols(off, len));
    EXPECT_LT((low.middleCols(off, len) - alone).cwiseAbs().maxCoeff(), 1e-5);
    off += len;
  }
}

TEST(BertEncoderTest, ErrorsNameTheTensor) {
  const BertConfig c = SmallBertConfig();
  const std::string bytes = SmallBertWeights(c, /*skip_last_norm=*/true);
  auto weights = SafeTensors::Parse(bytes, "random");
  ASSERT_TRUE(weights.ok()) << weights.status();
  auto encoder = BertEncoder::Create(c, **weights);
  ASSERT_FALSE(encoder.ok());
  EXPECT_NE(encoder.status().message().find(
                "encoder.layer.1.output.LayerNorm.weight"),
            absl::string_view::npos)
      << encoder.status();
  BertConfig odd = c;
  odd.num_attention_heads = 3;
  EXPECT_FALSE(BertEncoder::Create(odd, **weights).ok());
}

}  // namespace
}  // namespace ctxembed
