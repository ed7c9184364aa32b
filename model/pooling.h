// Pooling: from one vector per token to one vector per text.
#ifndef CTXEMBED_MODEL_POOLING_H_
#define CTXEMBED_MODEL_POOLING_H_

#include <Eigen/Core>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctxembed {

enum class Pooling {
  // fastText's sentence vector: the mean of the L2-normalised token vectors,
  // zero-norm tokens skipped; bit-for-bit fastText's print-sentence-vectors.
  kFastText,
  // Mean of the token vectors.
  kMean,
  // Element-wise maximum of the token vectors.
  kMax,
};

// "fasttext", "mean", "max" -> Pooling; INVALID_ARGUMENT otherwise.
absl::StatusOr<Pooling> ParsePooling(absl::string_view name);
absl::string_view PoolingName(Pooling pooling);

// Pools the columns of `tokens` (dim x n, one column per token) into *out
// (resized to dim). With no tokens the result is the zero vector.
void Pool(const Eigen::MatrixXf& tokens, Pooling pooling, Eigen::VectorXf* out);

// Scales `v` to unit L2 norm; a zero vector stays zero.
void NormalizeL2(Eigen::Ref<Eigen::VectorXf> v);

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_POOLING_H_
