// Hugging Face / sentence-transformers directories through Model::Load (and
// so under the sanitizers): what is read from which file, and what is
// refused. Vector parity with PyTorch is tests/python/test_transformer.py's.
#include "model/hf_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/bert_test_util.h"
#include "model/model.h"
#include "model/test_data.h"

namespace ctxembed {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::SmallBertConfig;
using testing::SmallBertWeights;
using testing::TempDir;

constexpr char kVocab[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ndog\nbites\nman\n##s\ncafe\n";

// A complete sentence-transformers directory `name` in `dir`: vocabulary of
// 10 entries (SmallBertConfig's vocab_size), a 2-layer encoder, cls pooling
// and Normalize.
std::string WriteModel(const TempDir& dir, const std::string& name,
                       const std::string& prefix = "") {
  const std::string d = dir.path() + "/" + name;
  std::filesystem::create_directories(d + "/1_Pooling");
  const BertConfig c = SmallBertConfig();
  auto write = [&](const std::string& file, const std::string& text) {
    dir.Write(name + "/" + file, text);
  };
  write("config.json", R"({"model_type": "bert", "vocab_size": 10,
    "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 24, "max_position_embeddings": 20,
    "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
    "architectures": ["BertModel"]})");
  write("model.safetensors",
        SmallBertWeights(c, false, prefix, /*words=*/true));
  write("vocab.txt", kVocab);
  write("tokenizer_config.json",
        R"({"do_lower_case": true, "model_max_length": 512,
            "unk_token": "[UNK]", "cls_token": {"content": "[CLS]"}})");
  write("modules.json", R"([
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])");
  write("1_Pooling/config.json",
        R"({"word_embedding_dimension": 16, "pooling_mode_cls_token": true,
            "pooling_mode_mean_tokens": false})");
  write("sentence_bert_config.json", R"({"max_seq_length": 12})");
  return d;
}

TEST(HfModelTest, LoadsASentenceTransformersDirectory) {
  TempDir dir;
  for (const std::string prefix : {"", "bert."}) {
    const std::string name = prefix.empty() ? "minibert" : "minibert-prefixed";
    const std::string d = WriteModel(dir, name, prefix);
    auto m = Model::Load(d);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ((*m)->name(), name);
    EXPECT_EQ((*m)->architecture(), "bert-L2-H16");
    EXPECT_EQ((*m)->dim(), 16);
    EXPECT_EQ((*m)->max_tokens(), 12);  // max_seq_length wins
    EXPECT_EQ((*m)->pooling(), Pooling::kCls);
    ASSERT_NE((*m)->tokenizer().wordpiece(), nullptr);

    std::vector<TokenList> sentences(2);
    (*m)->tokenizer().Tokenize("The DOGS bite!", &sentences[0]);
    EXPECT_THAT(sentences[0], ElementsAre("[CLS]", "the", "dog", "##s", "[UNK]",
                                          "[UNK]", "[SEP]"));
    (*m)->tokenizer().Tokenize("cafe", &sentences[1]);
    TowerScratch scratch;
    Eigen::MatrixXf out;
    (*m)->tower(0).Embed(sentences, (*m)->pooling(), scratch, &out);
    ASSERT_EQ(out.rows(), 16);
    ASSERT_EQ(out.cols(), 2);
    EXPECT_NEAR(out.col(0).norm(), 1.0f, 1e-5);  // Normalize module
    EXPECT_TRUE(out.allFinite());
  }
}

TEST(HfModelTest, CtxembedJsonAsksForReducedPrecision) {
  TempDir dir;
  const std::string d = WriteModel(dir, "m");
  auto fp32 = Model::Load(d);
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  EXPECT_EQ((*fp32)->config().precision, Precision::kFp32);
  std::vector<TokenList> sentences(2);
  (*fp32)->tokenizer().Tokenize("the dogs bite the cafe", &sentences[0]);
  (*fp32)->tokenizer().Tokenize("cafe", &sentences[1]);
  TowerScratch scratch;
  Eigen::MatrixXf a, b;
  (*fp32)->tower(0).Embed(sentences, (*fp32)->pooling(), scratch, &a);
  for (const Precision precision : {Precision::kBf16, Precision::kInt8}) {
    dir.Write("m/ctxembed.json", absl::StrCat(R"({"precision": ")",
                                              PrecisionName(precision), "\"}"));
    auto low = Model::Load(d);
    ASSERT_TRUE(low.ok()) << low.status();
    EXPECT_EQ((*low)->config().precision, precision);
    ASSERT_NE((*low)->tower(0).transformer(), nullptr);
    EXPECT_EQ((*low)->tower(0).transformer()->config().precision, precision);
    (*low)->tower(0).Embed(sentences, (*low)->pooling(), scratch, &b);
    for (int j = 0; j < 2; ++j) {
      EXPECT_GT(a.col(j).dot(b.col(j)), 0.999f);  // both normalized
      EXPECT_NE(a.col(j), b.col(j));
    }
  }
}

TEST(HfModelTest, AVersionDirectoryIsNamedAfterItsParent) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/minilm");
  const std::string d = WriteModel(dir, "minilm/3");
  auto m = Model::Load(d);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->name(), "minilm");
}

TEST(HfModelTest, RefusalsNameTheFileAndKey) {
  struct Case {
    std::string file, text, message;
  };
  const std::vector<Case> cases = {
      {"config.json", R"({"model_type": "gpt2", "vocab_size": 10})",
       "\"gpt2\" is not supported"},
      {"config.json",
       R"({"model_type": "bert", "vocab_size": 10, "hidden_size": 16,
           "num_hidden_layers": 2, "num_attention_heads": 5,
           "intermediate_size": 24})",
       "does not divide hidden_size"},
      {"config.json", R"({"model_type": "bert", "model_type": "bert"})",
       "appears twice"},
      {"vocab.txt", "[PAD]\n[UNK]\n", "has no \"[CLS]\" token"},
      {"1_Pooling/config.json",
       R"({"pooling_mode_cls_token": true, "pooling_mode_max_tokens": true})",
       "exactly one pooling mode"},
      {"1_Pooling/config.json", R"({"pooling_mode_lasttoken": true})",
       "pooling_mode_lasttoken\": is not supported"},
      {"modules.json",
       R"([{"type": "sentence_transformers.models.Transformer", "path": ""},
           {"type": "sentence_transformers.models.Dense", "path": "2_Dense"}])",
       "sentence_transformers.models.Dense\" is not supported"},
      {"tokenizer.json", R"({"normalizer": {"type": "Sequence"}})",
       "type \"Sequence\" is not supported"},
      {"ctxembed.json", R"({"precision": "fp16"})",
       "expected \"fp32\", \"bf16\" or \"int8\""},
      {"ctxembed.json", R"({"dtype": "bf16"})", "\"dtype\": unknown"},
      {"ctxembed.json", "[]", "expected a JSON object"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    const std::string d = WriteModel(dir, "m");
    dir.Write("m/" + c.file, c.text);
    auto m = Model::Load(d);
    ASSERT_FALSE(m.ok()) << c.file << ": " << c.text;
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.message))
        << m.status();
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.file))
        << m.status();
  }
  TempDir dir;
  const std::string d = WriteModel(dir, "m");
  std::filesystem::remove(d + "/model.safetensors");
  auto m = Model::Load(d);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("safe_serialization=True"));
}

TEST(HfModelTest, RecognisesTheLayoutByItsConfig) {
  EXPECT_TRUE(IsHuggingFaceConfig(R"({"model_type": "bert"})"));
  EXPECT_FALSE(
      IsHuggingFaceConfig(R"({"model_type": "bert", "ctxembed_format": 1})"));
  EXPECT_FALSE(IsHuggingFaceConfig(R"({"ctxembed_format": 1})"));
  EXPECT_FALSE(IsHuggingFaceConfig("not json"));
}

}  // namespace
}  // namespace ctxembed
