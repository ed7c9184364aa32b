#include "model/static_vectors.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/byte_reader.h"
#include "model/status_macros.h"

namespace ctxembed {
namespace {

constexpr int kMaxDim = 1 << 16;
constexpr size_t kMaxWordBytes = 4096;

}  // namespace

absl::Status ParseVectorsHeader(absl::string_view data, const std::string& name,
                                size_t* count, int* dim, size_t* header_bytes) {
  const size_t eol = data.find('\n');
  if (eol == absl::string_view::npos || eol > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat(name,
                     ": not a fastText .bin, .vec or word2vec file (no magic "
                     "number and no \"count dim\" header line)"));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(
      absl::StripAsciiWhitespace(data.substr(0, eol)), ' ', absl::SkipEmpty());
  uint64_t n = 0;
  int d = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &n) ||
      !absl::SimpleAtoi(parts[1], &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": line 1: expected \"count dim\", got \"",
                     absl::CHexEscape(data.substr(0, eol)), "\""));
  }
  if (d < 1 || d > kMaxDim) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": line 1: dim ", d, " is outside [1, ", kMaxDim, "]"));
  }
  // Every row takes at least one byte per value and two for word and
  // separator, so a larger count is a lie we must not allocate for.
  if (n > (data.size() - eol) / (static_cast<uint64_t>(d) + 2)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": line 1: header claims ", n, " words of dim ", d,
                     "; the file has only ", data.size(), " bytes"));
  }
  *count = n;
  *dim = d;
  *header_bytes = eol + 1;
  return absl::OkStatus();
}

StaticVectors::StaticVectors(int dim, size_t words, absl::string_view format)
    : dim_(dim), format_(format) {
  ids_.reserve(words);
  rows_.reserve(words * dim);
}

float* StaticVectors::AddRow(absl::string_view word) {
  const size_t row = rows_.size() / dim_;
  rows_.resize(rows_.size() + dim_);
  ids_.emplace(std::string(word), row);
  return rows_.data() + row * dim_;
}

void StaticVectors::Lookup(absl::string_view word, float* out) const {
  auto it = ids_.find(word);
  if (it == ids_.end()) {
    std::fill(out, out + dim_, 0.0f);
    return;
  }
  std::memcpy(out, rows_.data() + it->second * dim_, dim_ * sizeof(float));
}

absl::StatusOr<std::unique_ptr<StaticVectors>> StaticVectors::ParseText(
    absl::string_view data, const std::string& name) {
  size_t count, pos;
  int dim;
  CTXEMBED_RETURN_IF_ERROR(ParseVectorsHeader(data, name, &count, &dim, &pos));
  std::unique_ptr<StaticVectors> v(new StaticVectors(dim, count, "vec"));
  size_t line_no = 1;
  for (size_t i = 0; i < count; ++i) {
    ++line_no;
    if (pos >= data.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": header says ", count, " words; the file ends after ", i));
    }
    const size_t eol = data.find('\n', pos);
    if (eol == absl::string_view::npos) {
      // Writers end every row with a newline; without it the file may have
      // been cut inside the last value.
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": line ", line_no,
                       ": no newline at the end of the row "
                       "(truncated file?)"));
    }
    absl::string_view line = data.substr(pos, eol - pos);
    pos = eol + 1;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.size() != static_cast<size_t>(dim) + 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": line ", line_no, ": ",
                       fields.empty() ? 0 : fields.size() - 1,
                       " values; the header says dim ", dim));
    }
    float* row = v->AddRow(fields[0]);
    for (int j = 0; j < dim; ++j) {
      if (!absl::SimpleAtof(fields[j + 1], &row[j])) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ": line ", line_no, ": value ", j + 1, " \"",
            absl::CHexEscape(fields[j + 1]), "\" is not a number"));
      }
    }
  }
  if (!absl::StripAsciiWhitespace(data.substr(std::min(pos, data.size())))
           .empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": line ", line_no + 1, ": more rows than the header's ", count));
  }
  return v;
}

absl::StatusOr<std::unique_ptr<StaticVectors>> StaticVectors::ParseBinary(
    absl::string_view data, const std::string& name) {
  size_t count, header;
  int dim;
  CTXEMBED_RETURN_IF_ERROR(
      ParseVectorsHeader(data, name, &count, &dim, &header));
  std::unique_ptr<StaticVectors> v(
      new StaticVectors(dim, count, "word2vec-bin"));
  ByteReader in(data, name);
  absl::string_view skip, values;
  CTXEMBED_RETURN_IF_ERROR(in.ReadBytes(header, &skip, "the header"));
  for (size_t i = 0; i < count; ++i) {
    while (in.remaining() > 0 && data[in.offset()] == '\n') {
      CTXEMBED_RETURN_IF_ERROR(in.ReadBytes(1, &skip, "a newline"));
    }
    const size_t space = data.find(' ', in.offset());
    if (space == absl::string_view::npos ||
        space - in.offset() > kMaxWordBytes || space == in.offset()) {
      return in.Error(absl::StrCat("word ", i + 1, " of ", count,
                                   " is missing, empty or not followed by "
                                   "a space"));
    }
    absl::string_view word;
    CTXEMBED_RETURN_IF_ERROR(
        in.ReadBytes(space - in.offset(), &word, "a word"));
    CTXEMBED_RETURN_IF_ERROR(in.ReadBytes(1, &skip, "a space"));
    CTXEMBED_RETURN_IF_ERROR(
        in.ReadBytes(dim * sizeof(float), &values,
                     absl::StrCat("the values of word ", i + 1)));
    std::memcpy(v->AddRow(word), values.data(), values.size());
  }
  while (in.remaining() > 0 && data[in.offset()] == '\n') {
    CTXEMBED_RETURN_IF_ERROR(in.ReadBytes(1, &skip, "a newline"));
  }
  if (in.remaining() != 0) {
    return in.Error(absl::StrCat(in.remaining(), " bytes after the ", count,
                                 " rows the header announced"));
  }
  return v;
}

}  // namespace ctxembed
