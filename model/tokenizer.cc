#include "model/tokenizer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "model/utf8.h"

namespace ctxembed {
namespace {

// The C locale's isspace(), which fastText's stream extraction uses.
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

bool IsAsciiPunct(char c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') ||
         (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
}

}  // namespace

template <typename Emit>
void Tokenizer::Split(absl::string_view text, Emit emit) const {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    while (i < n && IsSpace(text[i])) ++i;
    const size_t start = i;
    if (split_punct_ && i < n && IsAsciiPunct(text[i])) {
      emit(text.substr(i++, 1));
      continue;
    }
    while (i < n && !IsSpace(text[i]) &&
           !(split_punct_ && IsAsciiPunct(text[i])))
      ++i;
    if (i > start) emit(text.substr(start, i - start));
  }
}

absl::StatusOr<Tokenizer> Tokenizer::Create(const Options& options) {
  if (options.kind != "whitespace" && options.kind != "words_and_punct") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown tokenizer kind \"", options.kind,
                     "\"; known: whitespace, words_and_punct"));
  }
  return Tokenizer(options);
}

Tokenizer Tokenizer::WordPiece(std::shared_ptr<const BertTokenizer> bert) {
  Options options;
  options.kind = "wordpiece";
  options.lowercase = bert->options().lowercase;
  Tokenizer t(options);
  t.wordpiece_ = std::move(bert);
  return t;
}

size_t Tokenizer::Tokenize(absl::string_view text,
                           std::vector<std::string>* tokens,
                           const Limits& limits) const {
  if (wordpiece_ != nullptr) {
    return wordpiece_->Tokenize(text, tokens, limits.max_tokens,
                                limits.keep_last);
  }
  tokens->clear();
  size_t count = 0;
  auto add = [&](absl::string_view token) {
    tokens->emplace_back(Utf8Prefix(token, limits.max_token_bytes));
    if (options_.lowercase) absl::AsciiStrToLower(&tokens->back());
  };
  if (limits.keep_last && limits.max_tokens > 0 &&
      limits.max_tokens != SIZE_MAX) {
    // A ring of the last max_tokens tokens (views of `text`).
    std::vector<absl::string_view> ring;
    Split(text, [&](absl::string_view token) {
      if (ring.size() < limits.max_tokens) {
        ring.push_back(token);
      } else {
        ring[count % limits.max_tokens] = token;
      }
      ++count;
    });
    const size_t first = count > ring.size() ? count % ring.size() : 0;
    for (size_t i = 0; i < ring.size(); ++i) {
      add(ring[(first + i) % ring.size()]);
    }
    return count;
  }
  Split(text, [&](absl::string_view token) {
    if (count++ >= limits.max_tokens) return;
    tokens->emplace_back(Utf8Prefix(token, limits.max_token_bytes));
    if (options_.lowercase) absl::AsciiStrToLower(&tokens->back());
  });
  return count;
}

size_t Tokenizer::CountTokens(absl::string_view text) const {
  if (wordpiece_ != nullptr) {
    std::vector<std::string> tokens;
    return wordpiece_->Tokenize(text, &tokens, 2, false);
  }
  size_t count = 0;
  Split(text, [&](absl::string_view) { ++count; });
  return count;
}

}  // namespace ctxembed
