// The word-vector layer of a model: a word in, a fixed-length vector out.
#ifndef CTXEMBED_MODEL_WORD_VECTORS_H_
#define CTXEMBED_MODEL_WORD_VECTORS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctxembed {

// Maps words to vectors of dim() floats. Implementations are immutable after
// loading and thread-safe: one instance serves every thread.
class WordVectors {
 public:
  virtual ~WordVectors() = default;

  virtual int dim() const = 0;
  // Number of words with a row of their own.
  virtual size_t vocab_size() const = 0;
  // "fasttext-bin", "vec" or "word2vec-bin".
  virtual absl::string_view format() const = 0;
  // True if `word` has a row of its own (it is in the vocabulary).
  virtual bool Contains(absl::string_view word) const = 0;
  // Writes the vector of `word` to out[0, dim()). Words with no row (and, for
  // fastText, no n-gram rows) get the zero vector. Allocates nothing.
  virtual void Lookup(absl::string_view word, float* out) const = 0;

  // True if the file records how often each word occurred in the text the
  // vectors were trained on (fastText .bin does; .vec and word2vec do not).
  virtual bool has_counts() const { return false; }
  // Occurrences of `word` in that text; 0 for a word with no row, and for
  // every word when has_counts() is false. Allocates nothing.
  virtual int64_t Count(absl::string_view word) const { return 0; }
  // Sum of Count() over the vocabulary (labels excluded).
  virtual int64_t total_count() const { return 0; }
};

// Loads a word-vector file, choosing the format by content, not by
// extension: fastText .bin (magic 793712314, versions 11 and 12), the .vec
// text format ("count dim" header, one "word v1 .. vdim" row per line), or the
// word2vec C binary format ("count dim" header, "word " then dim float32
// values per row). On error returns NOT_FOUND for a missing file and
// DATA_LOSS / INVALID_ARGUMENT with a message naming the file, the byte
// offset or line, and the problem; never reads past the end of the file and
// never allocates more than the file's size justifies.
absl::StatusOr<std::unique_ptr<const WordVectors>> LoadWordVectors(
    const std::string& path);

// As LoadWordVectors, from bytes already in memory; `name` is used in errors.
absl::StatusOr<std::unique_ptr<const WordVectors>> ParseWordVectors(
    absl::string_view data, const std::string& name);

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_WORD_VECTORS_H_
