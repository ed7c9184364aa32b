// Splits text into the tokens a model sees.
#ifndef CTXEMBED_MODEL_TOKENIZER_H_
#define CTXEMBED_MODEL_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/bert_tokenizer.h"

namespace ctxembed {

// Immutable after Create; thread-safe.
class Tokenizer {
 public:
  struct Options {
    // "whitespace": split on space, tab, newline, CR, VT and FF exactly as
    // fastText's `>>` reading does; every other byte belongs to a token.
    // "words_and_punct": the same, and each ASCII punctuation character
    // (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~) is a token of its own.
    std::string kind = "whitespace";
    // Fold ASCII letters A-Z to lower case (other scripts are left as is).
    bool lowercase = false;
  };

  // INVALID_ARGUMENT for an unknown kind.
  static absl::StatusOr<Tokenizer> Create(const Options& options);
  // BERT's word pieces (kind "wordpiece"): Tokenize gives the CLS token,
  // the pieces and the SEP token, max_tokens counting all of them;
  // max_token_bytes does not apply (a word over the tokenizer's
  // max_input_chars_per_word is one unknown token).
  static Tokenizer WordPiece(std::shared_ptr<const BertTokenizer> bert);

  // Bounds on what Tokenize builds, so that a huge input costs no more
  // than the limits: at most `max_tokens` tokens are kept, each cut to at
  // most `max_token_bytes` bytes (at a UTF-8 character boundary).
  struct Limits {
    size_t max_tokens = SIZE_MAX;
    size_t max_token_bytes = SIZE_MAX;
    // Past max_tokens, keep the last max_tokens tokens instead of the
    // first (truncation on the left); still never more than max_tokens
    // views of the text are held.
    bool keep_last = false;
  };

  // Appends the tokens of `text` to *tokens (cleared first), within
  // `limits`. Returns how many tokens the whole text has (counted, not
  // built, past max_tokens).
  size_t Tokenize(absl::string_view text, std::vector<std::string>* tokens,
                  const Limits& limits) const;
  void Tokenize(absl::string_view text,
                std::vector<std::string>* tokens) const {
    Tokenize(text, tokens, Limits());
  }
  // Number of tokens of `text`, without building them.
  size_t CountTokens(absl::string_view text) const;

  const Options& options() const { return options_; }
  // Null unless kind is "wordpiece".
  const BertTokenizer* wordpiece() const { return wordpiece_.get(); }

 private:
  explicit Tokenizer(const Options& options)
      : options_(options), split_punct_(options.kind == "words_and_punct") {}
  template <typename Emit>
  void Split(absl::string_view text, Emit emit) const;

  Options options_;
  bool split_punct_;
  std::shared_ptr<const BertTokenizer> wordpiece_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_TOKENIZER_H_
