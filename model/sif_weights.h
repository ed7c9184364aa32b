// SIF sentence vectors (Arora, Liang and Ma, "A Simple but Tough-to-Beat
// Baseline for Sentence Embeddings", ICLR 2017): token vectors averaged with
// weights a / (a + p(word)), then the common components removed.
#ifndef CTXEMBED_MODEL_SIF_WEIGHTS_H_
#define CTXEMBED_MODEL_SIF_WEIGHTS_H_

#include <Eigen/Core>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "model/model_config.h"
#include "model/word_vectors.h"

namespace ctxembed {

// Immutable after Create; thread-safe.
//
// p(word) = count(word) / (sum of all counts), from the counts file the
// config names or else the counts a fastText .bin records; a word the counts
// do not list has p = 0 and so weight 1 (rare words weigh most, as in SIF).
class SifWeights {
 public:
  // `vectors` must outlive the result when the counts come from it. Token
  // vectors (and components) have `token_dim` entries. Errors: no counts
  // (vectors without them and no counts file) is FAILED_PRECONDITION; a bad
  // counts or components file is INVALID_ARGUMENT / DATA_LOSS naming the
  // file and line or tensor.
  static absl::StatusOr<std::unique_ptr<SifWeights>> Create(
      const SifConfig& config, const WordVectors& vectors, int token_dim,
      const std::string& model_dir);

  // a / (a + p(token)).
  float Weight(absl::string_view token) const;

  // out = (1 / n) sum_t Weight(words[t]) * tokens.col(t), then for each
  // component u: out -= (u . out) u (the components are orthonormal, so
  // this is out - U^T U out). No tokens: the zero vector. Allocates nothing.
  void Pool(const Eigen::Ref<const Eigen::MatrixXf>& tokens,
            absl::Span<const std::string> words,
            Eigen::Ref<Eigen::VectorXf> out) const;

  double a() const { return a_; }
  int num_components() const { return static_cast<int>(components_.rows()); }

 private:
  SifWeights() = default;
  absl::Status LoadCounts(const std::string& path);
  absl::Status LoadComponents(const std::string& path, int token_dim);

  // Constant after construction.
  double a_ = 1e-3;
  const WordVectors* vectors_ = nullptr;  // counts from here unless file
  absl::flat_hash_map<std::string, int64_t> file_counts_;
  double total_ = 0;
  Eigen::MatrixXf components_;  // k x token_dim, unit rows
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_SIF_WEIGHTS_H_
