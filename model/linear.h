// A PyTorch nn.Linear layer with an optional activation, applied to columns.
#ifndef CTXEMBED_MODEL_LINEAR_H_
#define CTXEMBED_MODEL_LINEAR_H_

#include <Eigen/Core>

#include "absl/status/statusor.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace ctxembed {

// Immutable after Create; thread-safe.
class Linear {
 public:
  // Reads "{prefix}.weight" ([out x in]; `in` must equal `input_size`) and,
  // if present, "{prefix}.bias" ([out]). Errors name the tensor and shapes.
  static absl::StatusOr<Linear> Create(const LinearConfig& config,
                                       int input_size,
                                       const SafeTensors& weights);

  int input_size() const { return static_cast<int>(weight_.cols()); }
  int output_size() const { return static_cast<int>(weight_.rows()); }

  // y = act(W x + b) for each column of x ([in x n]); y is [out x n].
  void Apply(const Eigen::Ref<const Eigen::MatrixXf>& x,
             Eigen::MatrixXf* y) const;

 private:
  Eigen::MatrixXf weight_;
  Eigen::VectorXf bias_;  // zero if the layer has none
  Activation activation_ = Activation::kNone;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_LINEAR_H_
