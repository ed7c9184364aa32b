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
  // The final states of the top recurrent module (PyTorch's h_n: forward
  // after the last token, backward after the first, concatenated). Pool()
  // does not handle it: the encoder produces it.
  kLast,
  // SIF (Arora, Liang and Ma 2017): the mean of the token vectors weighted
  // by a / (a + p(word)), then the model's common components removed.
  // Pool() does not handle it: the tower's SifWeights do (they need the
  // words, not only their vectors).
  kSif,
  // The first token's vector (BERT's [CLS]; sentence-transformers' "cls").
  kCls,
  // The sum of the token vectors divided by the square root of their number
  // (sentence-transformers' "mean_sqrt_len_tokens").
  kMeanSqrtLen,
};

// "fasttext", "mean", "max", "last", "sif", "cls", "mean_sqrt_len" -> Pooling;
// INVALID_ARGUMENT otherwise.
absl::StatusOr<Pooling> ParsePooling(absl::string_view name);
absl::string_view PoolingName(Pooling pooling);

// Pools the columns of `tokens` (dim x n, one column per token) into `out`
// (dim). With no tokens the result is the zero vector. kFastText, kMean and
// kMax, kCls and kMeanSqrtLen only (kLast and kSif leave `out` zero).
void Pool(const Eigen::Ref<const Eigen::MatrixXf>& tokens, Pooling pooling,
          Eigen::Ref<Eigen::VectorXf> out);

// Scales `v` to unit L2 norm; a zero vector stays zero.
void NormalizeL2(Eigen::Ref<Eigen::VectorXf> v);

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_POOLING_H_
