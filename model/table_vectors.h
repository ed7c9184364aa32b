// Word vectors from a learned embedding table (nn.Embedding weights) and a
// vocabulary file, as seq2seq and Object2Vec models keep them.
#ifndef CTXEMBED_MODEL_TABLE_VECTORS_H_
#define CTXEMBED_MODEL_TABLE_VECTORS_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "model/safetensors.h"
#include "model/word_vectors.h"

namespace ctxembed {

// Immutable after Create; thread-safe.
class TableVectors : public WordVectors {
 public:
  // `vocab_path` holds one token per line; line i (from 0) names row i of
  // `tensor` ([lines x dim]). Unknown words get the `unk_token` row, or the
  // zero vector when `unk_token` is empty. Errors name the file or tensor:
  // a shape that disagrees with the vocabulary, an unk_token missing from
  // it, duplicate tokens.
  static absl::StatusOr<std::unique_ptr<TableVectors>> Create(
      const SafeTensors& weights, const std::string& tensor,
      const std::string& vocab_path, const std::string& unk_token);

  int dim() const override { return static_cast<int>(table_.cols()); }
  size_t vocab_size() const override { return ids_.size(); }
  absl::string_view format() const override { return "table"; }
  bool Contains(absl::string_view word) const override {
    return ids_.contains(word);
  }
  void Lookup(absl::string_view word, float* out) const override;

 private:
  TableVectors() = default;

  RowMatrixXf table_;
  absl::flat_hash_map<std::string, int> ids_;
  int unk_ = -1;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_TABLE_VECTORS_H_
