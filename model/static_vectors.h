// Word vectors from a plain table: the fastText / word2vec .vec text format
// or the word2vec C binary format. No subwords: unknown words are zero.
#ifndef CTXEMBED_MODEL_STATIC_VECTORS_H_
#define CTXEMBED_MODEL_STATIC_VECTORS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/word_vectors.h"

namespace ctxembed {

// Immutable after parsing; thread-safe.
class StaticVectors : public WordVectors {
 public:
  // Parses the .vec text format: a "count dim" line, then `count` lines of a
  // word and `dim` decimal values separated by spaces. Errors name the line.
  static absl::StatusOr<std::unique_ptr<StaticVectors>> ParseText(
      absl::string_view data, const std::string& name);
  // Parses the word2vec C binary format: a "count dim" line, then per word
  // the word, one space, and `dim` little-endian float32 values (a newline
  // may separate rows). Errors name the byte offset.
  static absl::StatusOr<std::unique_ptr<StaticVectors>> ParseBinary(
      absl::string_view data, const std::string& name);

  int dim() const override { return dim_; }
  size_t vocab_size() const override { return ids_.size(); }
  absl::string_view format() const override { return format_; }
  bool Contains(absl::string_view word) const override {
    return ids_.contains(word);
  }
  void Lookup(absl::string_view word, float* out) const override;

 private:
  StaticVectors(int dim, size_t words, absl::string_view format);
  // Adds a row; the first of duplicate words wins.
  float* AddRow(absl::string_view word);

  // Constant after parsing.
  int dim_;
  absl::string_view format_;
  absl::flat_hash_map<std::string, size_t> ids_;
  std::vector<float> rows_;
};

// Parses a "count dim" header line (the first line of both formats). On
// success sets *count, *dim and *header_bytes (including the newline).
absl::Status ParseVectorsHeader(absl::string_view data, const std::string& name,
                                size_t* count, int* dim, size_t* header_bytes);

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_STATIC_VECTORS_H_
