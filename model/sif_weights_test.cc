#include "model/sif_weights.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "model/model.h"
#include "model/test_data.h"

namespace ctxembed {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

std::unique_ptr<const WordVectors> GoldenVectors(const std::string& file) {
  auto v = LoadWordVectors(testing::GoldenDir() + "/models/" + file);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *std::move(v) : nullptr;
}

// A safetensors file holding one F32 tensor "components" of `shape`.
std::string Components(std::vector<int64_t> shape, std::vector<float> values) {
  std::string header = "{\"components\":{\"dtype\":\"F32\",\"shape\":[" +
                       std::to_string(shape[0]) + "," +
                       std::to_string(shape[1]) + "],\"data_offsets\":[0," +
                       std::to_string(values.size() * 4) + "]}}";
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(&out[0], &n, 8);
  out += header;
  out.append(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  return out;
}

TEST(SifWeightsTest, WeightsComeFromTheBinCounts) {
  auto vectors = GoldenVectors("sg_d8/vectors.bin");
  ASSERT_TRUE(vectors->has_counts());
  // fastText's own Python binding lists "the" 1947 times in 19474 words.
  EXPECT_EQ(vectors->Count("the"), 1947);
  EXPECT_EQ(vectors->total_count(), 19474);
  EXPECT_EQ(vectors->Count("zzunknownzz"), 0);
  SifConfig config;
  config.a = 1e-3;
  auto sif = SifWeights::Create(config, *vectors, vectors->dim(), "");
  ASSERT_TRUE(sif.ok()) << sif.status();
  EXPECT_FLOAT_EQ((*sif)->Weight("the"), 1e-3 / (1e-3 + 1947.0 / 19474.0));
  EXPECT_FLOAT_EQ((*sif)->Weight("zzunknownzz"), 1.0f);  // rare weighs most
}

TEST(SifWeightsTest, PoolsTheWeightedMeanAndRemovesComponents) {
  TempDir dir;
  dir.Write("counts.txt", "a 3\nb 1\n");
  dir.Write("c.safetensors", Components({1, 2}, {1.0f, 0.0f}));
  auto vectors = GoldenVectors("sg_d8_vec/vectors.vec");
  SifConfig config;
  config.a = 0.25;  // p(a) = 0.75, p(b) = 0.25: weights 0.25 and 0.5
  config.counts = "counts.txt";
  auto plain = SifWeights::Create(config, *vectors, 2, dir.path());
  ASSERT_TRUE(plain.ok()) << plain.status();
  config.components = "c.safetensors";
  auto sif = SifWeights::Create(config, *vectors, 2, dir.path());
  ASSERT_TRUE(sif.ok()) << sif.status();
  Eigen::MatrixXf tokens(2, 2);
  tokens << 4, 8,  //
      2, 6;
  const std::vector<std::string> words = {"a", "b"};
  Eigen::VectorXf out(2);
  (*plain)->Pool(tokens, words, out);
  EXPECT_FLOAT_EQ(out[0], (0.25f * 4 + 0.5f * 8) / 2);
  EXPECT_FLOAT_EQ(out[1], (0.25f * 2 + 0.5f * 6) / 2);
  (*sif)->Pool(tokens, words, out);
  EXPECT_FLOAT_EQ(out[0], 0.0f);  // the component [1, 0] is gone
  EXPECT_FLOAT_EQ(out[1], (0.25f * 2 + 0.5f * 6) / 2);
  (*sif)->Pool(tokens.leftCols(0), {}, out);
  EXPECT_TRUE(out.isZero());
}

TEST(SifWeightsTest, BadFilesAreRefusedNamingTheLine) {
  TempDir dir;
  auto vectors = GoldenVectors("sg_d8_vec/vectors.vec");
  SifConfig config;
  EXPECT_EQ(SifWeights::Create(config, *vectors, 8, dir.path()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  config.counts = "counts.txt";
  for (const auto& [text, message] :
       std::vector<std::pair<std::string, std::string>>{
           {"a 1\nb\n", "line 2"},
           {"a -3\n", "line 1"},
           {"a 1\na 2\n", "line 2: word \"a\" is listed twice"},
           {"a 0\n", "add up to 0"}}) {
    dir.Write("counts.txt", text);
    auto sif = SifWeights::Create(config, *vectors, 8, dir.path());
    EXPECT_THAT(sif.status().ToString(), HasSubstr(message)) << text;
  }
  dir.Write("counts.txt", "a 1\n");
  config.components = "c.safetensors";
  for (const auto& [file, message] :
       std::vector<std::pair<std::string, std::string>>{
           {Components({1, 3}, {1, 0, 0}), "expected shape [k, 2]"},
           {Components({1, 2}, {2, 0}), "unit vectors"},
           {Components({2, 2}, {1, 0, 0.6f, 0.8f}), "not orthogonal"}}) {
    dir.Write("c.safetensors", file);
    auto sif = SifWeights::Create(config, *vectors, 2, dir.path());
    EXPECT_THAT(sif.status().ToString(), HasSubstr(message));
  }
}

TEST(SifWeightsTest, TowersOfferSifWhereThereAreCounts) {
  TempDir dir;
  const std::string golden = testing::GoldenDir() + "/models/";
  dir.Write("config.json", R"({"ctxembed_format": 1, "name": "m",
      "embedding": {"kind": "fasttext", "file": ")" +
                               golden + R"(sg_d8_vec/vectors.vec"}})");
  auto vec = Model::Load(dir.path());
  ASSERT_TRUE(vec.ok()) << vec.status();
  EXPECT_FALSE((*vec)->tower(0).supports_sif());
  dir.Write("config.json", R"({"ctxembed_format": 1, "name": "m",
      "pooling": "sif", "embedding": {"kind": "fasttext", "file": ")" +
                               golden + R"(sg_d8_vec/vectors.vec"}})");
  EXPECT_THAT(Model::Load(dir.path()).status().ToString(),
              HasSubstr("name a counts file"));
  dir.Write("config.json", R"({"ctxembed_format": 1, "name": "m",
      "embedding": {"kind": "fasttext", "file": ")" +
                               golden + R"(sg_d8/vectors.bin"}})");
  auto bin = Model::Load(dir.path());
  ASSERT_TRUE(bin.ok()) << bin.status();
  EXPECT_TRUE((*bin)->tower(0).supports_sif());
  EXPECT_EQ((*bin)->pooling(), Pooling::kFastText);
}

TEST(SifWeightsTest, ConfigKeysAreChecked) {
  const std::string head = R"({"ctxembed_format": 1, "name": "m",
      "embedding": {"kind": "fasttext", "file": "v.bin"}, "sif": )";
  auto ok = ParseModelConfig(
      head + R"({"a": 0.0001, "counts": "c.txt", "components": "p.st"}})", "c");
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_TRUE(ok->towers[0].second.sif.has_value());
  EXPECT_DOUBLE_EQ(ok->towers[0].second.sif->a, 1e-4);
  EXPECT_EQ(ok->towers[0].second.sif->counts, "c.txt");
  EXPECT_THAT(ParseModelConfig(head + R"({"a": 0}})", "c").status().ToString(),
              HasSubstr("key \"sif.a\": 0 is outside (0, 1]"));
  EXPECT_THAT(ParseModelConfig(head + R"({"b": 1}})", "c").status().ToString(),
              HasSubstr("key \"sif.b\": unknown key"));
  EXPECT_THAT(ParseModelConfig(head + R"(1})", "c").status().ToString(),
              HasSubstr("expected an object"));
}

}  // namespace
}  // namespace ctxembed
