#include "model/bert_tokenizer.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf16.h>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "model/mapped_file.h"

namespace ctxembed {
namespace {

// ECMAScript's \s (what @huggingface/transformers splits on).
bool IsWhitespace(UChar32 c) {
  switch (c) {
    case '\t':
    case '\n':
    case 0x0B:
    case 0x0C:
    case '\r':
    case ' ':
    case 0x00A0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
    case 0xFEFF:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

bool IsControl(UChar32 c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (u_charType(c)) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_PRIVATE_USE_CHAR:
    case U_SURROGATE:
      return true;
    default:
      return false;
  }
}

bool IsPunctuation(UChar32 c) {
  if ((c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
      (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E)) {
    return true;
  }
  switch (u_charType(c)) {
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_CONNECTOR_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
      return true;
    default:
      return false;
  }
}

// The CJK Unified Ideographs blocks BERT pads with spaces.
bool IsChinese(UChar32 c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

void AppendUtf8(UChar32 c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

void StripAccents(icu::UnicodeString* text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(status);
  if (U_SUCCESS(status)) {
    icu::UnicodeString decomposed = nfd->normalize(*text, status);
    if (U_SUCCESS(status)) *text = std::move(decomposed);
  }
  icu::UnicodeString kept;
  for (int32_t i = 0; i < text->length();) {
    const UChar32 c = text->char32At(i);
    i += U16_LENGTH(c);
    if (u_charType(c) != U_NON_SPACING_MARK) kept.append(c);
  }
  *text = std::move(kept);
}

icu::UnicodeString NormalizeText(absl::string_view text,
                                 const BertTokenizerOptions& o) {
  // Invalid UTF-8 becomes U+FFFD, which clean_text drops.
  const icu::UnicodeString in = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  icu::UnicodeString out;
  for (int32_t i = 0; i < in.length();) {
    const UChar32 c = in.char32At(i);
    i += U16_LENGTH(c);
    if (o.clean_text) {
      if (c == 0 || c == 0xFFFD || IsControl(c)) continue;
      if (IsWhitespace(c)) {
        out.append(static_cast<UChar>(' '));
        continue;
      }
    }
    if (o.handle_chinese_chars && IsChinese(c)) {
      out.append(static_cast<UChar>(' '));
      out.append(c);
      out.append(static_cast<UChar>(' '));
      continue;
    }
    out.append(c);
  }
  if (o.lowercase) {
    out.toLower(icu::Locale::getRoot());
    if (o.strip_accents.value_or(true)) StripAccents(&out);
  } else if (o.strip_accents.value_or(false)) {
    StripAccents(&out);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<const BertTokenizer>> BertTokenizer::Create(
    const std::string& vocab_path, const BertTokenizerOptions& options) {
  std::string text;
  {
    absl::StatusOr<std::string> read = ReadFileToString(vocab_path);
    if (!read.ok()) return read.status();
    text = *std::move(read);
  }
  std::unique_ptr<BertTokenizer> t(new BertTokenizer());
  t->options_ = options;
  size_t begin = 0;
  int id = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    absl::string_view line(text.data() + begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // A repeated token keeps its first id (as Hugging Face's reading does).
    t->vocab_.emplace(std::string(line), id++);
    begin = end + 1;
  }
  if (t->vocab_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(vocab_path, ": the vocabulary is empty"));
  }
  for (const std::string* token :
       {&options.unk_token, &options.cls_token, &options.sep_token}) {
    if (!t->vocab_.contains(*token)) {
      return absl::InvalidArgumentError(absl::StrCat(
          vocab_path, ": the vocabulary has no \"", *token, "\" token"));
    }
  }
  if (options.max_input_chars_per_word < 1) {
    return absl::InvalidArgumentError("max_input_chars_per_word must be >= 1");
  }
  return std::unique_ptr<const BertTokenizer>(std::move(t));
}

int BertTokenizer::Id(absl::string_view token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

std::string BertTokenizer::Normalize(absl::string_view text) const {
  std::string out;
  NormalizeText(text, options_).toUTF8String(out);
  return out;
}

template <typename Emit>
void BertTokenizer::SplitWord(absl::string_view word,
                              const std::vector<size_t>& starts,
                              std::string& buffer, Emit emit) const {
  const size_t n = starts.size() - 1;  // characters
  const absl::string_view unk = vocab_.find(options_.unk_token)->first;
  if (n > static_cast<size_t>(options_.max_input_chars_per_word)) {
    emit(unk);
    return;
  }
  absl::InlinedVector<absl::string_view, 8> pieces;
  size_t start = 0;
  while (start < n) {
    size_t end = n;
    const std::string* found = nullptr;
    while (start < end) {
      absl::string_view sub =
          word.substr(starts[start], starts[end] - starts[start]);
      if (start > 0) {
        buffer.assign(options_.continuing_subword_prefix);
        buffer.append(sub.data(), sub.size());
        sub = buffer;
      }
      auto it = vocab_.find(sub);
      if (it != vocab_.end()) {
        found = &it->first;
        break;
      }
      --end;
    }
    if (found == nullptr) {
      emit(unk);
      return;
    }
    pieces.push_back(*found);
    start = end;
  }
  for (absl::string_view piece : pieces) emit(piece);
}

template <typename Emit>
void BertTokenizer::WordPieces(absl::string_view text, Emit emit) const {
  const icu::UnicodeString normalized = NormalizeText(text, options_);
  std::string word, buffer;
  std::vector<size_t> starts;
  // A word over max_input_chars_per_word is the unknown token whatever it
  // holds: its characters are counted, not kept (a 20 MB word costs no
  // more memory than a short one).
  const size_t max_chars = options_.max_input_chars_per_word;
  bool overlong = false;
  auto flush = [&] {
    if (overlong) {
      emit(vocab_.find(options_.unk_token)->first);
    } else if (!starts.empty()) {
      starts.push_back(word.size());
      SplitWord(word, starts, buffer, emit);
    }
    word.clear();
    starts.clear();
    overlong = false;
  };
  for (int32_t i = 0; i < normalized.length();) {
    const UChar32 c = normalized.char32At(i);
    i += U16_LENGTH(c);
    if (IsWhitespace(c)) {
      flush();
    } else if (IsPunctuation(c)) {
      flush();
      starts.push_back(0);
      AppendUtf8(c, &word);
      flush();
    } else if (!overlong) {
      if (starts.size() == max_chars) {
        overlong = true;
        continue;
      }
      starts.push_back(word.size());
      AppendUtf8(c, &word);
    }
  }
  flush();
}

size_t BertTokenizer::Tokenize(absl::string_view text,
                               std::vector<std::string>* tokens,
                               size_t max_tokens, bool keep_last) const {
  tokens->clear();
  const size_t keep = max_tokens < 2 ? 0 : max_tokens - 2;
  size_t count = 0;
  tokens->push_back(options_.cls_token);
  if (!keep_last) {
    WordPieces(text, [&](absl::string_view piece) {
      if (count++ < keep) tokens->emplace_back(piece);
    });
  } else {
    // A ring of the last `keep` pieces (views of the vocabulary's keys).
    std::vector<absl::string_view> ring;
    WordPieces(text, [&](absl::string_view piece) {
      if (keep == 0) {
      } else if (ring.size() < keep) {
        ring.push_back(piece);
      } else {
        ring[count % keep] = piece;
      }
      ++count;
    });
    const size_t first =
        count > ring.size() && !ring.empty() ? count % ring.size() : 0;
    for (size_t i = 0; i < ring.size(); ++i) {
      tokens->emplace_back(ring[(first + i) % ring.size()]);
    }
  }
  tokens->push_back(options_.sep_token);
  return count + 2;
}

}  // namespace ctxembed
