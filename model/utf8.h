// UTF-8 validation for request texts and vocabulary words.
#ifndef CTXEMBED_MODEL_UTF8_H_
#define CTXEMBED_MODEL_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace ctxembed {

// Returns the byte offset of the first byte that is not part of a well-formed
// UTF-8 sequence (RFC 3629: no overlongs, no surrogates, <= U+10FFFF), or
// absl::string_view::npos when `text` is valid. Thread-safe.
size_t FindInvalidUtf8(absl::string_view text);

inline bool IsValidUtf8(absl::string_view text) {
  return FindInvalidUtf8(text) == absl::string_view::npos;
}

// The longest prefix of `text` of at most `max_bytes` bytes that does not
// split a UTF-8 character (it backs off over continuation bytes).
inline absl::string_view Utf8Prefix(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  return text.substr(0, end);
}

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_UTF8_H_
