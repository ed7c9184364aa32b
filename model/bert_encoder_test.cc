#include "model/bert_encoder.h"

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ctxembed {
namespace {

// A safetensors file of random F32 tensors (parity with PyTorch is
// tests/python/test_transformer.py's; these tests check what the packed
// layout must guarantee).
class RandomWeights {
 public:
  void Add(const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(n);
    for (float& x : v) x = dist_(rng_);
    tensors_[name] = {std::move(shape), std::move(v)};
  }
  std::string Bytes() const {
    std::string header = "{", data;
    for (const auto& [name, t] : tensors_) {
      const size_t begin = data.size();
      data.append(reinterpret_cast<const char*>(t.second.data()),
                  t.second.size() * sizeof(float));
      std::string shape;
      for (int64_t d : t.first)
        absl::StrAppend(&shape, shape.empty() ? "" : ",", d);
      absl::StrAppend(&header, header.size() > 1 ? "," : "", "\"", name,
                      "\":{\"dtype\":\"F32\",\"shape\":[", shape,
                      "],\"data_offsets\":[", begin, ",", data.size(), "]}");
    }
    header += "}";
    uint64_t len = header.size();
    std::string out(8, '\0');
    std::memcpy(&out[0], &len, 8);
    return out + header + data;
  }

 private:
  std::mt19937 rng_{42};
  std::normal_distribution<float> dist_{0.0f, 0.1f};
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>
      tensors_;
};

BertConfig SmallConfig() {
  BertConfig c;
  c.vocab_size = 10;
  c.hidden_size = 16;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.intermediate_size = 24;
  c.max_position_embeddings = 20;
  c.type_vocab_size = 2;
  return c;
}

std::string SmallWeights(const BertConfig& c, bool skip_last_norm = false) {
  RandomWeights w;
  const int64_t h = c.hidden_size, i = c.intermediate_size;
  w.Add("embeddings.position_embeddings.weight",
        {c.max_position_embeddings, h});
  w.Add("embeddings.token_type_embeddings.weight", {c.type_vocab_size, h});
  w.Add("embeddings.LayerNorm.weight", {h});
  w.Add("embeddings.LayerNorm.bias", {h});
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = absl::StrCat("encoder.layer.", l, ".");
    for (const char* part : {"query", "key", "value"}) {
      w.Add(absl::StrCat(p, "attention.self.", part, ".weight"), {h, h});
      w.Add(absl::StrCat(p, "attention.self.", part, ".bias"), {h});
    }
    w.Add(p + "attention.output.dense.weight", {h, h});
    w.Add(p + "attention.output.dense.bias", {h});
    w.Add(p + "attention.output.LayerNorm.weight", {h});
    w.Add(p + "attention.output.LayerNorm.bias", {h});
    w.Add(p + "intermediate.dense.weight", {i, h});
    w.Add(p + "intermediate.dense.bias", {i});
    w.Add(p + "output.dense.weight", {h, i});
    w.Add(p + "output.dense.bias", {h});
    if (!(skip_last_norm && l + 1 == c.num_hidden_layers)) {
      w.Add(p + "output.LayerNorm.weight", {h});
      w.Add(p + "output.LayerNorm.bias", {h});
    }
  }
  return w.Bytes();
}

Eigen::MatrixXf Forward(const BertEncoder& e, const std::vector<int>& lengths,
                        const Eigen::MatrixXf& words) {
  SequenceBatch batch;
  batch.Reset(lengths);
  BertScratch scratch;
  Eigen::MatrixXf x = words;
  e.Forward(batch, scratch, &x);
  return x;
}

// A small random encoder.
class SmallEncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bytes_ = SmallWeights(SmallConfig());
    auto weights = SafeTensors::Parse(bytes_, "random");
    ASSERT_TRUE(weights.ok()) << weights.status();
    weights_ = *std::move(weights);
    auto encoder = BertEncoder::Create(SmallConfig(), *weights_);
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

TEST(BertEncoderTest, ErrorsNameTheTensor) {
  const BertConfig c = SmallConfig();
  const std::string bytes = SmallWeights(c, /*skip_last_norm=*/true);
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
