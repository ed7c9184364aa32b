// A read-only memory map of a whole file.
#ifndef CTXEMBED_MODEL_MAPPED_FILE_H_
#define CTXEMBED_MODEL_MAPPED_FILE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctxembed {

// Immutable after Open; thread-safe. The mapping lives as long as the object.
class MappedFile {
 public:
  // Maps `path` read-only. NOT_FOUND if it does not exist, FAILED_PRECONDITION
  // if it is not a regular file, INTERNAL for other OS errors; the message
  // names the path and the OS error.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(
      const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  absl::string_view data() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const char* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  const std::string path_;
  const char* const data_;  // nullptr for an empty file
  const size_t size_;
};

// Reads a whole (small) file into a string, with the same errors as Open.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_MAPPED_FILE_H_
