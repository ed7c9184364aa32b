// Object2Vec's comparator: scores a pair from its two tower vectors.
#ifndef CTXEMBED_MODEL_COMPARATOR_H_
#define CTXEMBED_MODEL_COMPARATOR_H_

#include <Eigen/Core>
#include <vector>

#include "absl/status/statusor.h"
#include "model/linear.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace ctxembed {

// Immutable after Create; thread-safe.
//
// The input of the MLP is [u, v, |u - v|, u * v] (4 * dim); its layers are
// PyTorch nn.Linear layers applied in order, each with its activation; the
// score is the last layer's single output (identity or sigmoid), or the
// softmax probability of `score_class`.
class Comparator {
 public:
  static absl::StatusOr<Comparator> Create(const ComparatorConfig& config,
                                           int dim, const SafeTensors& weights);

  // One score per column pair of u and v (both [dim x n]).
  std::vector<float> Score(const Eigen::MatrixXf& u,
                           const Eigen::MatrixXf& v) const;

 private:
  ComparatorConfig config_;
  std::vector<Linear> layers_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_COMPARATOR_H_
