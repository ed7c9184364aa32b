#include "model/word_vectors.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/fasttext_vectors.h"
#include "model/mapped_file.h"
#include "model/static_vectors.h"
#include "model/status_macros.h"
#include "model/utf8.h"

namespace ctxembed {
namespace {

constexpr int32_t kFastTextMagic = 793712314;

int32_t Int32At(absl::string_view data, size_t offset) {
  int32_t v;
  std::memcpy(&v, data.data() + offset, sizeof(v));
  return v;
}

// A .vec row is a line of text; a word2vec binary row carries raw float
// bytes, which almost always include control bytes or invalid UTF-8 within
// its first `dim` values. Judged on the first row only.
bool FirstRowIsText(absl::string_view data, size_t header, int dim) {
  absl::string_view rest = data.substr(header);
  const size_t limit = std::min(
      rest.size(), rest.find(' ') == absl::string_view::npos
                       ? rest.size()
                       : rest.find(' ') + 1 + 4 * static_cast<size_t>(dim));
  absl::string_view row = rest.substr(0, std::min(limit, rest.find('\n')));
  for (char c : row) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\t' && c != '\r') return false;
  }
  return IsValidUtf8(row);
}

// fastText before 0.9 wrote the Args block first: dim, ws, epoch ... as
// small positive int32 values.
bool LooksLikeOldFastText(absl::string_view data) {
  if (data.size() < 16) return false;
  const int32_t dim = Int32At(data, 0), ws = Int32At(data, 4),
                epoch = Int32At(data, 8);
  return dim > 0 && dim <= 65536 && ws > 0 && ws < 1000 && epoch > 0 &&
         epoch < 100000;
}

}  // namespace

absl::StatusOr<std::unique_ptr<const WordVectors>> ParseWordVectors(
    absl::string_view data, const std::string& name) {
  if (data.size() >= 4 && Int32At(data, 0) == kFastTextMagic) {
    CTXEMBED_ASSIGN_OR_RETURN(auto v, FastTextVectors::Parse(data, name));
    return std::unique_ptr<const WordVectors>(std::move(v));
  }
  size_t count, header;
  int dim;
  absl::Status header_status =
      ParseVectorsHeader(data, name, &count, &dim, &header);
  if (!header_status.ok()) {
    if (LooksLikeOldFastText(data)) {
      return absl::InvalidArgumentError(absl::StrCat(
          name,
          ": fastText model from before version 0.9 (no magic "
          "number); ctxembed reads fastText 0.9+ .bin files: load it "
          "with fastText 0.9 and save it again"));
    }
    return header_status;
  }
  if (count == 0 || FirstRowIsText(data, header, dim)) {
    CTXEMBED_ASSIGN_OR_RETURN(auto v, StaticVectors::ParseText(data, name));
    return std::unique_ptr<const WordVectors>(std::move(v));
  }
  CTXEMBED_ASSIGN_OR_RETURN(auto v, StaticVectors::ParseBinary(data, name));
  return std::unique_ptr<const WordVectors>(std::move(v));
}

absl::StatusOr<std::unique_ptr<const WordVectors>> LoadWordVectors(
    const std::string& path) {
  CTXEMBED_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  return ParseWordVectors(file->data(), path);
}

}  // namespace ctxembed
