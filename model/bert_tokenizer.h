// BERT's tokenizer as Hugging Face runs it (BertNormalizer, BertPreTokenizer,
// WordPiece, the [CLS] ... [SEP] template), for transformer models saved by
// sentence-transformers / save_pretrained.
//
// Normalization, in order (the order and the Unicode rules of
// @huggingface/transformers and of transformers' Python BertTokenizer):
//   1. clean_text: U+0000, U+FFFD and control characters (categories Cc,
//      Cf, Co, Cs other than tab, newline and CR) are dropped; whitespace
//      (ECMAScript's \s) becomes a space.
//   2. handle_chinese_chars: CJK ideographs get a space on each side.
//   3. lowercase: full Unicode lower-casing of the whole text (context
//      rules such as the final sigma included), then, unless strip_accents
//      is false, accents are stripped: NFD, then nonspacing marks (Mn)
//      dropped. Without lowercase, accents are stripped only if
//      strip_accents is true.
// Pre-tokenization: runs of characters that are neither whitespace nor
// punctuation (Unicode P* or ASCII punctuation) form words; each punctuation
// character is a word of its own. WordPiece: greedy longest match from the
// left, continuations prefixed "##"; a word with no full match, or longer
// than max_input_chars_per_word characters, is the unknown token.
// Unicode properties and case mapping come from ICU.
#ifndef CTXEMBED_MODEL_BERT_TOKENIZER_H_
#define CTXEMBED_MODEL_BERT_TOKENIZER_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctxembed {

struct BertTokenizerOptions {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  bool lowercase = true;
  std::optional<bool> strip_accents;  // unset: strip when lower-casing
  std::string unk_token = "[UNK]";
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string continuing_subword_prefix = "##";
  int max_input_chars_per_word = 100;
};

// Immutable after Create; thread-safe.
class BertTokenizer {
 public:
  // Reads `vocab_path` (one token per line; line i is id i). Errors name the
  // file: missing, empty, or without the unknown, CLS or SEP token.
  static absl::StatusOr<std::unique_ptr<const BertTokenizer>> Create(
      const std::string& vocab_path, const BertTokenizerOptions& options);

  // Appends the tokens of `text` to *tokens (cleared first): the CLS token,
  // the word pieces, the SEP token. At most `max_tokens` (at least 2) are
  // kept: the first word pieces, or with `keep_last` the last ones (the
  // CLS and SEP tokens always). Returns how many tokens the whole text has,
  // CLS and SEP included.
  size_t Tokenize(absl::string_view text, std::vector<std::string>* tokens,
                  size_t max_tokens, bool keep_last) const;

  // The normalized text (steps 1-3 above), for tests.
  std::string Normalize(absl::string_view text) const;

  // Id of `token` in the vocabulary, or -1.
  int Id(absl::string_view token) const;
  int vocab_size() const { return static_cast<int>(vocab_.size()); }
  const BertTokenizerOptions& options() const { return options_; }

 private:
  BertTokenizer() = default;
  // Calls emit(piece) for each word piece of `text`.
  template <typename Emit>
  void WordPieces(absl::string_view text, Emit emit) const;
  // The pieces of one pre-tokenized word (UTF-8), given the byte offset of
  // each of its characters (and the end).
  template <typename Emit>
  void SplitWord(absl::string_view word, const std::vector<size_t>& starts,
                 std::string& buffer, Emit emit) const;

  BertTokenizerOptions options_;
  absl::flat_hash_map<std::string, int> vocab_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_BERT_TOKENIZER_H_
