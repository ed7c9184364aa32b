#include "model/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ctxembed {
namespace {

using ::testing::HasSubstr;

constexpr char kGood[] = R"({
  "ctxembed_format": 1, "name": "ft-small", "max_tokens": 256,
  "tokenizer": {"kind": "whitespace", "lowercase": true},
  "embedding": {"kind": "fasttext", "file": "vectors.bin"},
  "encoder": [],
  "pooling": "mean" })";

TEST(ModelConfigTest, ParsesTheDocumentedExample) {
  auto c = ParseModelConfig(kGood, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "ft-small");
  EXPECT_EQ(c->max_tokens, 256);
  EXPECT_TRUE(c->tokenizer.lowercase);
  EXPECT_EQ(c->embedding.kind, "fasttext");
  EXPECT_EQ(c->embedding.file, "vectors.bin");
  EXPECT_EQ(c->pooling, Pooling::kMean);
}

TEST(ModelConfigTest, DefaultsOptionalKeys) {
  auto c = ParseModelConfig(
      R"({"ctxembed_format": 1, "name": "m",
          "embedding": {"kind": "fasttext", "file": "v.vec"}})",
      "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_tokens, 256);
  EXPECT_EQ(c->tokenizer.kind, "whitespace");
  EXPECT_EQ(c->pooling, Pooling::kFastText);
}

struct BadCase {
  const char* json;
  const char* expected;
};

TEST(ModelConfigTest, ErrorsNameTheFileAndTheKey) {
  const BadCase cases[] = {
      {"{", "invalid JSON at byte 2"},
      {"[]", "expected a JSON object"},
      {R"({"name": "m", "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"ctxembed_format\": required key is missing"},
      {R"({"ctxembed_format": 2, "name": "m"})",
       "\"ctxembed_format\": 2 is outside [1, 1]"},
      {R"({"ctxembed_format": 1, "name": "a b",
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"name\": must be"},
      {R"({"ctxembed_format": 1, "name": "m", "max_tokens": "9",
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"max_tokens\": expected an integer, got \"9\""},
      {R"({"ctxembed_format": 1, "name": "m", "max_tokens": 0,
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"max_tokens\": 0 is outside"},
      {R"({"ctxembed_format": 1, "name": "m"})",
       "\"embedding\": required key is missing"},
      {R"({"ctxembed_format": 1, "name": "m", "embedding": {"kind": "glove"}})",
       "\"embedding.kind\": unknown kind \"glove\""},
      {R"({"ctxembed_format": 1, "name": "m", "embedding": {"kind": "fasttext"}})",
       "\"embedding.file\": required key is missing"},
      {R"({"ctxembed_format": 1, "name": "m", "polling": "mean",
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"polling\": unknown key"},
      {R"({"ctxembed_format": 1, "name": "m", "pooling": "cls",
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"pooling\": unknown pooling \"cls\""},
      {R"({"ctxembed_format": 1, "name": "m", "tokenizer": {"kind": "bpe"},
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"tokenizer.kind\": unknown tokenizer kind"},
      {R"({"ctxembed_format": 1, "name": "m", "encoder": {},
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"encoder\": expected a list"},
  };
  for (const BadCase& c : cases) {
    auto result = ParseModelConfig(c.json, "dir/config.json");
    ASSERT_FALSE(result.ok()) << c.json;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().ToString(), HasSubstr("dir/config.json: "));
    EXPECT_THAT(result.status().ToString(), HasSubstr(c.expected)) << c.json;
  }
}

}  // namespace
}  // namespace ctxembed
