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

size_t Tokenizer::Tokenize(absl::string_view text,
                           std::vector<std::string>* tokens,
                           const Limits& limits) const {
  tokens->clear();
  size_t count = 0;
  Split(text, [&](absl::string_view token) {
    if (count++ >= limits.max_tokens) return;
    tokens->emplace_back(Utf8Prefix(token, limits.max_token_bytes));
    if (options_.lowercase) absl::AsciiStrToLower(&tokens->back());
  });
  return count;
}

size_t Tokenizer::CountTokens(absl::string_view text) const {
  size_t count = 0;
  Split(text, [&](absl::string_view) { ++count; });
  return count;
}

}  // namespace ctxembed
