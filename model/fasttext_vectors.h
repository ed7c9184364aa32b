// Word vectors of a fastText / SageMaker BlazingText .bin model, subwords
// included, equal bit for bit to fastText's `print-word-vectors`.
#ifndef CTXEMBED_MODEL_FASTTEXT_VECTORS_H_
#define CTXEMBED_MODEL_FASTTEXT_VECTORS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/byte_reader.h"
#include "model/word_vectors.h"

namespace ctxembed {

// The parts of fastText's header (class Args) that decide word vectors.
struct FastTextArgs {
  int32_t version = 0;
  int32_t dim = 0;
  int32_t loss = 0;   // 1 hs, 2 ns, 3 softmax, 4 one-vs-all
  int32_t model = 0;  // 1 cbow, 2 skipgram, 3 supervised
  int32_t bucket = 0;
  int32_t minn = 0;
  int32_t maxn = 0;
};

// fastText's hash of a byte string: 32-bit FNV-1a over the bytes
// sign-extended from int8 (so bytes >= 0x80 mix in as 0xFFFFFFxx).
uint32_t FastTextHash(absl::string_view bytes);

// Immutable after Parse; thread-safe.
//
// A word's vector is the mean of its rows in the input matrix, summed in
// fastText's order: the word's own row when it is in the dictionary, then
// the rows of its character n-grams (minn..maxn UTF-8 characters of
// "<word>", hashed into `bucket` rows). "</s>" has no n-grams.
class FastTextVectors : public WordVectors {
 public:
  // Parses a whole .bin file image. Refuses quantized (.ftz) models, files
  // without the magic number (fastText before 0.9), versions other than 11
  // and 12, truncated files, trailing bytes, and headers whose sizes
  // disagree with each other or with the file's length.
  static absl::StatusOr<std::unique_ptr<FastTextVectors>> Parse(
      absl::string_view data, const std::string& name);

  int dim() const override { return args_.dim; }
  size_t vocab_size() const override { return static_cast<size_t>(nwords_); }
  absl::string_view format() const override { return "fasttext-bin"; }
  bool Contains(absl::string_view word) const override;
  void Lookup(absl::string_view word, float* out) const override;
  bool has_counts() const override { return true; }
  int64_t Count(absl::string_view word) const override;
  int64_t total_count() const override { return total_count_; }

  const FastTextArgs& args() const { return args_; }
  // The input-matrix rows that make up `word`'s vector, in summation order.
  // For tests and tools; Lookup does not allocate.
  std::vector<int64_t> RowsOf(absl::string_view word) const;

 private:
  FastTextVectors() = default;
  absl::Status ParsePruneIndex(ByteReader& in, int64_t prune_size);
  absl::Status ParseMatrices(ByteReader& in);
  template <typename Visit>
  void ForEachRow(absl::string_view word, Visit visit) const;
  template <typename Visit>
  void ForEachNgramRow(absl::string_view word, Visit visit) const;

  // Constant after construction.
  FastTextArgs args_;
  int32_t nwords_ = 0;
  int64_t rows_ = 0;
  // Word -> dictionary id (labels included, as fastText's getId does).
  absl::flat_hash_map<std::string, int32_t> ids_;
  std::vector<int64_t> counts_;  // by dictionary id, words and labels
  int64_t total_count_ = 0;      // words only
  // Set only for pruned models: bucket -> compacted n-gram row.
  bool pruned_ = false;
  absl::flat_hash_map<int32_t, int32_t> prune_index_;
  std::vector<float> input_;  // rows_ x dim, row-major
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_FASTTEXT_VECTORS_H_
