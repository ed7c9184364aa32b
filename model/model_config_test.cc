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
  ASSERT_EQ(c->towers.size(), 1u);
  EXPECT_EQ(c->towers[0].first, "enc0");
  EXPECT_EQ(c->towers[0].second.embedding.kind, EmbeddingKind::kFastText);
  EXPECT_EQ(c->towers[0].second.embedding.file, "vectors.bin");
  EXPECT_EQ(c->towers[0].second.pooling, Pooling::kMean);
  EXPECT_FALSE(c->NeedsWeights());
}

TEST(ModelConfigTest, ParsesEncodersAndDualTowers) {
  auto c = ParseModelConfig(R"({
    "ctxembed_format": 1, "name": "o2v", "weights": "w.safetensors",
    "tokenizer": {"kind": "words_and_punct", "lowercase": true},
    "towers": {
      "enc0": {"embedding": {"kind": "table", "tensor": "emb.weight",
                             "vocab": "vocab.txt"},
               "encoder": [{"kind": "gru", "prefix": "q", "input_size": 8,
                            "hidden_size": 6, "bidirectional": true}],
               "pooling": "last", "projection": {"prefix": "qp"}},
      "enc1": {"embedding": {"kind": "fasttext", "file": "v.bin"},
               "normalize": true}},
    "comparator": {"layers": [{"prefix": "cmp.0", "activation": "relu"},
                              {"prefix": "cmp.2"}], "output": "softmax"}})",
                            "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->weights, "w.safetensors");
  ASSERT_EQ(c->towers.size(), 2u);
  const TowerConfig& q = c->towers[0].second;
  EXPECT_EQ(q.embedding.unk_token, "<unk>");
  ASSERT_EQ(q.encoder.size(), 1u);
  EXPECT_EQ(q.encoder[0].kind, RecurrentKind::kGru);
  EXPECT_TRUE(q.encoder[0].bidirectional);
  EXPECT_EQ(q.encoder[0].num_layers, 1);
  EXPECT_EQ(q.pooling, Pooling::kLast);
  EXPECT_EQ(q.projection->prefix, "qp");
  EXPECT_TRUE(c->towers[1].second.normalize);
  EXPECT_EQ(c->towers[1].second.pooling, Pooling::kFastText);
  ASSERT_TRUE(c->comparator.has_value());
  EXPECT_EQ(c->comparator->layers[0].activation, Activation::kRelu);
  EXPECT_EQ(c->comparator->output, ComparatorOutput::kSoftmax);
  EXPECT_TRUE(c->NeedsWeights());
  EXPECT_EQ(c->precision, Precision::kFp32);
  EXPECT_EQ(q.encoder[0].precision, Precision::kFp32);
}

TEST(ModelConfigTest, PrecisionReachesEveryEncoderModule) {
  auto c = ParseModelConfig(
      R"({"ctxembed_format": 1, "name": "m", "precision": "bf16",
          "embedding": {"kind": "fasttext", "file": "v.bin"},
          "encoder": [{"kind": "lstm", "prefix": "a", "input_size": 4,
                       "hidden_size": 2, "bidirectional": true},
                      {"kind": "gru", "prefix": "b", "input_size": 4,
                       "hidden_size": 4}]})",
      "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->precision, Precision::kBf16);
  for (const RecurrentConfig& m : c->towers[0].second.encoder) {
    EXPECT_EQ(m.precision, Precision::kBf16) << m.prefix;
  }
  auto bad = ParseModelConfig(
      R"({"ctxembed_format": 1, "name": "m", "precision": "fp16",
          "embedding": {"kind": "fasttext", "file": "v.bin"}})",
      "config.json");
  EXPECT_THAT(bad.status().message(),
              HasSubstr("\"precision\": unknown precision \"fp16\"; known: "
                        "fp32, bf16, int8"));
}

TEST(ModelConfigTest, DefaultsOptionalKeys) {
  auto c = ParseModelConfig(
      R"({"ctxembed_format": 1, "name": "m",
          "embedding": {"kind": "fasttext", "file": "v.vec"}})",
      "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_tokens, 256);
  EXPECT_EQ(c->tokenizer.kind, "whitespace");
  EXPECT_EQ(c->towers[0].second.pooling, Pooling::kFastText);
}

struct BadCase {
  const char* json;
  const char* expected;
};

TEST(ModelConfigTest, ErrorsNameTheFileAndTheKey) {
  const BadCase cases[] = {
      {"{", "invalid JSON at byte 2"},
      {"1e1111", "invalid JSON: [json.exception.out_of_range.406]"},
      {R"({"ctxembed_format": 1, "name": "m", "name": "n",
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "key \"name\" appears twice in one object"},
      {R"({"ctxembed_format": 1, "name": "m",
           "embedding": {"kind": "fasttext", "file": "v", "file": "w"}})",
       "key \"file\" appears twice in one object"},
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
      {R"({"ctxembed_format": 1, "name": "m", "pooling": "last",
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"pooling\": \"last\" needs an encoder module"},
      {R"({"ctxembed_format": 1, "name": "m",
           "embedding": {"kind": "fasttext", "file": "v"},
           "encoder": [{"kind": "rnn", "prefix": "r", "input_size": 4,
                        "hidden_size": 4}]})",
       "\"encoder[0].kind\": unknown kind \"rnn\""},
      {R"({"ctxembed_format": 1, "name": "m",
           "embedding": {"kind": "fasttext", "file": "v"},
           "encoder": [{"kind": "lstm", "prefix": "r", "input_size": 4}]})",
       "\"encoder[0].hidden_size\": required key is missing"},
      {R"({"ctxembed_format": 1, "name": "m",
           "embedding": {"kind": "fasttext", "file": "v"},
           "encoder": [{"kind": "lstm", "prefix": "r", "input_size": 4,
                        "hidden_size": 2, "bidirectional": true,
                        "residual": true, "concat_input": true}]})",
       "\"encoder[0].concat_input\": excludes \"residual\""},
      {R"({"ctxembed_format": 1, "name": "m", "pooling": "last",
           "embedding": {"kind": "fasttext", "file": "v"},
           "encoder": [{"kind": "gru", "prefix": "r", "input_size": 4,
                        "hidden_size": 4, "concat_input": true}]})",
       "\"pooling\": \"last\" needs a top encoder module without "
       "concat_input"},
      {R"({"ctxembed_format": 1, "name": "m",
           "embedding": {"kind": "fasttext", "file": "v"},
           "projection": {"prefix": "p", "activation": "gelu"}})",
       "\"projection.activation\": unknown activation \"gelu\"; known: none, "
       "relu, tanh, sigmoid"},
      {R"({"ctxembed_format": 1, "name": "m",
           "towers": {"enc0": {"embedding": {"kind": "fasttext", "file": "v"}},
                      "enc1": {"embedding": {"kind": "fasttext", "file": "v"}}},
           "comparator": {"layers": [{"prefix": "c"}], "output": "tanh"}})",
       "\"comparator.output\": unknown output \"tanh\"; known: identity, "
       "sigmoid, softmax"},
      {R"({"ctxembed_format": 1, "name": "m", "towers": {"enc0": {}},
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"embedding\": belongs inside each tower"},
      {R"({"ctxembed_format": 1, "name": "m", "towers": {"enc0":
           {"embedding": {"kind": "fasttext", "file": "v"}}}})",
       "\"towers.enc1\": required key is missing"},
      {R"({"ctxembed_format": 1, "name": "m", "comparator": {},
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"comparator\": needs two towers"},
      {R"({"ctxembed_format": 1, "name": "m", "embedding": {"kind": "fasttext"}})",
       "\"embedding.file\": required key is missing"},
      {R"({"ctxembed_format": 1, "name": "m", "polling": "mean",
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"polling\": unknown key"},
      {R"({"ctxembed_format": 1, "name": "m", "pooling": "weightedmean",
           "embedding": {"kind": "fasttext", "file": "v"}})",
       "\"pooling\": unknown pooling \"weightedmean\""},
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
