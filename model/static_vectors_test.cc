#include "model/static_vectors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "model/word_vectors.h"

namespace ctxembed {
namespace {

using ::testing::HasSubstr;

std::string Binary(
    const std::vector<std::pair<std::string, std::vector<float>>>& rows,
    int dim) {
  std::string out =
      std::to_string(rows.size()) + " " + std::to_string(dim) + "\n";
  for (const auto& [word, values] : rows) {
    out += word + " ";
    out.append(reinterpret_cast<const char*>(values.data()), values.size() * 4);
    out += "\n";
  }
  return out;
}

TEST(StaticVectorsTest, ReadsVecText) {
  auto v = ParseWordVectors("2 3\nhello 1 2 3 \nwörld -0.5 1e-3 4\n", "t.vec");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->format(), "vec");
  EXPECT_EQ((*v)->dim(), 3);
  EXPECT_EQ((*v)->vocab_size(), 2u);
  float out[3];
  (*v)->Lookup("wörld", out);
  EXPECT_FLOAT_EQ(out[0], -0.5f);
  EXPECT_FLOAT_EQ(out[1], 1e-3f);
  (*v)->Lookup("missing", out);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_FALSE((*v)->Contains("missing"));
}

TEST(StaticVectorsTest, ReadsWord2VecBinary) {
  const std::string data = Binary({{"a", {1.5f, -2}}, {"日本", {0.25f, 8}}}, 2);
  auto v = ParseWordVectors(data, "t.bin");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->format(), "word2vec-bin");
  float out[2];
  (*v)->Lookup("日本", out);
  EXPECT_EQ(out[0], 0.25f);
  EXPECT_EQ(out[1], 8.0f);
}

TEST(StaticVectorsTest, VecRowWithWrongCountNamesTheLine) {
  auto v = ParseWordVectors("2 3\na 1 2 3\nb 1 2\n", "bad.vec");
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().ToString(),
              HasSubstr("bad.vec: line 3: 2 values; the header says dim 3"));
  v = ParseWordVectors("1 2\na 1 x\n", "bad.vec");
  EXPECT_THAT(v.status().ToString(), HasSubstr("line 2: value 2 \"x\""));
  v = ParseWordVectors("1 2\na 1 2\nb 3 4\n", "bad.vec");
  EXPECT_THAT(v.status().ToString(),
              HasSubstr("more rows than the header's 1"));
}

TEST(StaticVectorsTest, AbsurdHeaderIsRefusedWithoutAllocating) {
  auto v = ParseWordVectors("4000000000 300\nx 1\n", "big.vec");
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().ToString(),
              HasSubstr("header claims 4000000000 words"));
  v = ParseWordVectors("1 0\n", "zero.vec");
  EXPECT_THAT(v.status().ToString(), HasSubstr("dim 0 is outside"));
}

TEST(StaticVectorsTest, EveryTruncationIsRefused) {
  const std::string bin = Binary({{"ab", {1, 2, 3}}, {"cd", {4, 5, 6}}}, 3);
  const std::string vec = "2 3\nab 1 2 3\ncd 4 5 6\n";
  for (const std::string* data : {&bin, &vec}) {
    for (size_t n = 0; n + 1 < data->size(); ++n) {
      EXPECT_FALSE(ParseWordVectors(data->substr(0, n), "cut").ok())
          << "prefix of " << n << " bytes was accepted";
    }
  }
}

TEST(StaticVectorsTest, UnknownContentIsRefused) {
  auto v = ParseWordVectors("hello world, this is not a model\n", "x.txt");
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().ToString(), HasSubstr("x.txt: line 1"));
  v = ParseWordVectors("", "empty");
  EXPECT_THAT(v.status().ToString(), HasSubstr("not a fastText .bin"));
}

}  // namespace
}  // namespace ctxembed
