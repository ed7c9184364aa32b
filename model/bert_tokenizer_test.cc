#include "model/bert_tokenizer.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ctxembed {
namespace {

using ::testing::ElementsAre;

class BertTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One file per test: ctest runs this suite's tests as parallel
    // processes, and one's TearDown must not remove another's vocabulary.
    path_ = ::testing::TempDir() + "/bert_tokenizer_test_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() +
            "_" + std::to_string(getpid()) + "_vocab.txt";
    std::ofstream out(path_);
    for (const char* token :
         {"[PAD]",  "[UNK]", "[CLS]", "[SEP]", "un",    "##aff",
          "##able", "the",   "dog",   "cafe",  "naive", "οδος",
          "οδοσ",   "你",    "好",    ",",     "!",     "¿",
          "—",      "a",     "##b",   "x",     "##y",   "hello"}) {
      out << token << "\n";
    }
  }
  void TearDown() override { std::remove(path_.c_str()); }

  std::unique_ptr<const BertTokenizer> Make(BertTokenizerOptions o = {}) {
    auto t = BertTokenizer::Create(path_, o);
    EXPECT_TRUE(t.ok()) << t.status();
    return *std::move(t);
  }
  std::vector<std::string> Tokens(const BertTokenizer& t, const char* text,
                                  size_t max_tokens = 512,
                                  bool keep_last = false) {
    std::vector<std::string> tokens;
    t.Tokenize(text, &tokens, max_tokens, keep_last);
    return tokens;
  }

  std::string path_;
};

TEST_F(BertTokenizerTest, GreedyLongestMatchWithContinuations) {
  auto t = Make();
  EXPECT_THAT(Tokens(*t, "unaffable dog"),
              ElementsAre("[CLS]", "un", "##aff", "##able", "dog", "[SEP]"));
  // No full match: the whole word is unknown, not a partial match.
  EXPECT_THAT(Tokens(*t, "unaffz the"),
              ElementsAre("[CLS]", "[UNK]", "the", "[SEP]"));
  EXPECT_THAT(Tokens(*t, ""), ElementsAre("[CLS]", "[SEP]"));
}

TEST_F(BertTokenizerTest, NormalizesLikeHuggingFace) {
  auto t = Make();
  // Lower case, then accents stripped (NFD, Mn dropped).
  EXPECT_EQ(t->Normalize("Café NAÏVE"), "cafe naive");
  // Full lower-casing with its context rule: a final capital sigma is ς.
  EXPECT_EQ(t->Normalize("ΟΔΟΣ"), "οδος");
  // Control and format characters go, whitespace becomes a space, CJK
  // ideographs are padded.
  EXPECT_EQ(t->Normalize("a\x01"
                         "b\xe2\x80\x8b"
                         "c\xc2\xa0"
                         "d\t你"),
            "abc d  你 ");
  EXPECT_THAT(Tokens(*t, "你好"), ElementsAre("[CLS]", "你", "好", "[SEP]"));
  // Unicode punctuation splits words, as ASCII punctuation does.
  EXPECT_THAT(Tokens(*t, "¿hello—dog!"),
              ElementsAre("[CLS]", "¿", "hello", "—", "dog", "!", "[SEP]"));
  // Invalid UTF-8 becomes U+FFFD, which is dropped.
  EXPECT_THAT(Tokens(*t, "dog\xff"), ElementsAre("[CLS]", "dog", "[SEP]"));
}

TEST_F(BertTokenizerTest, CasedTokenizerKeepsCaseAndAccents) {
  BertTokenizerOptions o;
  o.lowercase = false;
  auto t = Make(o);
  EXPECT_EQ(t->Normalize("Café"), "Café");
  o.strip_accents = true;
  EXPECT_EQ(Make(o)->Normalize("Café"), "Cafe");
}

TEST_F(BertTokenizerTest, LongWordsAreOneUnknownToken) {
  auto t = Make();
  const std::string word(101, 'a');
  EXPECT_THAT(Tokens(*t, word.c_str()), ElementsAre("[CLS]", "[UNK]", "[SEP]"));
  // 100 characters are still split into pieces: "a", then 99 "##b".
  std::string ab = "a";
  for (int i = 0; i < 99; ++i) ab += "b";
  EXPECT_EQ(Tokens(*t, ab.c_str()).size(), 102u);
}

TEST_F(BertTokenizerTest, TruncationKeepsClsAndSep) {
  auto t = Make();
  std::vector<std::string> tokens;
  EXPECT_EQ(t->Tokenize("the dog the dog", &tokens, 4, false), 6u);
  EXPECT_THAT(tokens, ElementsAre("[CLS]", "the", "dog", "[SEP]"));
  EXPECT_EQ(t->Tokenize("a x the dog", &tokens, 4, true), 6u);
  EXPECT_THAT(tokens, ElementsAre("[CLS]", "the", "dog", "[SEP]"));
  EXPECT_EQ(t->Tokenize("a dog", &tokens, 2, true), 4u);
  EXPECT_THAT(tokens, ElementsAre("[CLS]", "[SEP]"));
}

TEST_F(BertTokenizerTest, RefusesVocabulariesWithoutSpecialTokens) {
  BertTokenizerOptions o;
  o.cls_token = "<s>";
  auto t = BertTokenizer::Create(path_, o);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()),
              ::testing::HasSubstr("has no \"<s>\" token"));
  EXPECT_FALSE(BertTokenizer::Create(path_ + ".missing", {}).ok());
}

}  // namespace
}  // namespace ctxembed
