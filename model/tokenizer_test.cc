#include "model/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ctxembed {
namespace {

using ::testing::ElementsAre;

TEST(TokenizerTest, SplitsOnTheSixAsciiSpacesLikeFastText) {
  auto t = Tokenizer::Create({});
  ASSERT_TRUE(t.ok());
  std::vector<std::string> tokens;
  t->Tokenize("  a\tb\nc\rd\ve\ff  g ", &tokens);
  EXPECT_THAT(tokens, ElementsAre("a", "b", "c", "d", "e", "f", "g"));
  EXPECT_EQ(t->CountTokens("  a\tb\nc\rd\ve\ff  g "), 7u);
  // Non-breaking space and other Unicode spaces are part of tokens, as in
  // fastText.
  t->Tokenize(
      "a\xC2\xA0"
      "b",
      &tokens);
  EXPECT_THAT(tokens, ElementsAre("a\xC2\xA0"
                                  "b"));
}

TEST(TokenizerTest, EmptyAndBlankTextHaveNoTokens) {
  auto t = Tokenizer::Create({});
  ASSERT_TRUE(t.ok());
  std::vector<std::string> tokens = {"stale"};
  t->Tokenize("", &tokens);
  EXPECT_TRUE(tokens.empty());
  t->Tokenize(" \t\n ", &tokens);
  EXPECT_TRUE(tokens.empty());
}

TEST(TokenizerTest, LowercaseFoldsAsciiOnly) {
  auto t = Tokenizer::Create({.kind = "whitespace", .lowercase = true});
  ASSERT_TRUE(t.ok());
  std::vector<std::string> tokens;
  t->Tokenize("The CAFÉ Straße", &tokens);
  EXPECT_THAT(tokens, ElementsAre("the", "cafÉ", "straße"));
}

TEST(TokenizerTest, WordsAndPunctSplitsAsciiPunctuation) {
  auto t = Tokenizer::Create({.kind = "words_and_punct", .lowercase = true});
  ASSERT_TRUE(t.ok());
  std::vector<std::string> tokens;
  t->Tokenize("Is this the answer? Yes, it's (mostly) café-style...", &tokens);
  EXPECT_THAT(tokens, ElementsAre("is", "this", "the", "answer", "?", "yes",
                                  ",", "it", "'", "s", "(", "mostly", ")",
                                  "café", "-", "style", ".", ".", "."));
  EXPECT_EQ(t->CountTokens("a,b"), 3u);
}

TEST(TokenizerTest, RejectsUnknownKind) {
  auto t = Tokenizer::Create({.kind = "bpe"});
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().ToString(), ::testing::HasSubstr("bpe"));
}

TEST(TokenizerTest, LimitsBoundWhatIsBuilt) {
  auto t = Tokenizer::Create({.kind = "words_and_punct", .lowercase = true});
  ASSERT_TRUE(t.ok());
  std::vector<std::string> tokens;
  // Only the first max_tokens are built; the count covers the whole text.
  EXPECT_EQ(t->Tokenize("A b, c d e", &tokens, {.max_tokens = 2}), 6u);
  EXPECT_THAT(tokens, ElementsAre("a", "b"));
  EXPECT_EQ(t->Tokenize("a b", &tokens, {.max_tokens = 0}), 2u);
  EXPECT_TRUE(tokens.empty());
  // keep_last: the last max_tokens, in order, whatever the ring's phase.
  for (const char* text : {"A b, c d e", "A b, c d", "A b, c"}) {
    EXPECT_EQ(t->Tokenize(text, &tokens, {.max_tokens = 3, .keep_last = true}),
              t->CountTokens(text));
    std::vector<std::string> all;
    t->Tokenize(text, &all);
    EXPECT_EQ(tokens, std::vector<std::string>(all.end() - 3, all.end()))
        << text;
  }
  EXPECT_EQ(t->Tokenize("a b", &tokens, {.max_tokens = 5, .keep_last = true}),
            2u);
  EXPECT_THAT(tokens, ElementsAre("a", "b"));
  // Long tokens are cut at a character boundary: "é" is 2 bytes, so 4
  // bytes of "ééé" keep 2 characters and 5 bytes keep 2 as well.
  EXPECT_EQ(t->Tokenize("\xc3\xa9\xc3\xa9\xc3\xa9 xy", &tokens,
                        {.max_token_bytes = 5}),
            2u);
  EXPECT_THAT(tokens, ElementsAre("\xc3\xa9\xc3\xa9", "xy"));
  EXPECT_EQ(t->Tokenize(std::string(1 << 20, 'W'), &tokens,
                        {.max_token_bytes = 1024}),
            1u);
  EXPECT_EQ(tokens[0], std::string(1024, 'w'));
}

}  // namespace
}  // namespace ctxembed
