// Bounds-checked little-endian reads over an in-memory file image.
#ifndef CTXEMBED_MODEL_BYTE_READER_H_
#define CTXEMBED_MODEL_BYTE_READER_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ctxembed {

// Reads fixed-size values and strings from `data`, never past its end: every
// read that would cross the end fails with a DATA_LOSS status naming the
// file, the offset and what was being read. Thread-compatible; does not own
// the bytes, which must outlive it. Assumes a little-endian host (x86-64,
// aarch64), as fastText's own files do.
class ByteReader {
 public:
  ByteReader(absl::string_view data, std::string file_name)
      : data_(data), file_name_(std::move(file_name)) {}

  size_t offset() const { return offset_; }
  size_t remaining() const { return data_.size() - offset_; }
  const std::string& file_name() const { return file_name_; }

  // Copies sizeof(T) bytes into *out. `what` names the field for errors.
  // (Not for bool: a byte other than 0 or 1 is no bool; see ReadBool.)
  template <typename T>
  absl::Status Read(T* out, absl::string_view what) {
    static_assert(!std::is_same_v<T, bool>, "use ReadBool");
    if (remaining() < sizeof(T)) return Truncated(what, sizeof(T));
    std::memcpy(out, data_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return absl::OkStatus();
  }

  // A one-byte flag, 0 or 1 (an error names any other value).
  absl::Status ReadBool(bool* out, absl::string_view what) {
    uint8_t byte = 0;
    if (absl::Status s = Read(&byte, what); !s.ok()) return s;
    if (byte > 1) {
      offset_ -= 1;
      return Error(absl::StrCat(what, " is ", byte, "; expected 0 or 1"));
    }
    *out = byte == 1;
    return absl::OkStatus();
  }

  // Returns a view of the next `n` bytes and moves past them.
  absl::Status ReadBytes(size_t n, absl::string_view* out,
                         absl::string_view what) {
    if (remaining() < n) return Truncated(what, n);
    *out = data_.substr(offset_, n);
    offset_ += n;
    return absl::OkStatus();
  }

  // Reads bytes up to (not including) the next NUL and moves past the NUL.
  absl::Status ReadCString(absl::string_view* out, absl::string_view what) {
    const size_t end = data_.find('\0', offset_);
    if (end == absl::string_view::npos) {
      return Error(absl::StrCat(what, " has no terminating NUL byte"));
    }
    *out = data_.substr(offset_, end - offset_);
    offset_ = end + 1;
    return absl::OkStatus();
  }

  // A DATA_LOSS error "FILE: at byte OFFSET: MESSAGE".
  absl::Status Error(absl::string_view message) const {
    return absl::DataLossError(
        absl::StrCat(file_name_, ": at byte ", offset_, ": ", message));
  }

 private:
  absl::Status Truncated(absl::string_view what, size_t needed) const {
    return Error(absl::StrCat("file ends while reading ", what, " (needs ",
                              needed, " bytes, ", remaining(), " left)"));
  }

  absl::string_view data_;
  std::string file_name_;
  size_t offset_ = 0;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_BYTE_READER_H_
