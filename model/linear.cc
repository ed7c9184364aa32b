#include "model/linear.h"

#include "absl/strings/str_cat.h"
#include "model/status_macros.h"

namespace ctxembed {

absl::StatusOr<Linear> Linear::Create(const LinearConfig& config,
                                      int input_size,
                                      const SafeTensors& weights) {
  const std::string w = config.prefix + ".weight";
  CTXEMBED_ASSIGN_OR_RETURN(const SafeTensors::TensorInfo* info,
                            weights.Info(w));
  if (info->shape.size() != 2 || info->shape[1] != input_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights.name(), ": tensor ", w, ": expected shape [out, ",
                     input_size, "], got ", ShapeString(info->shape)));
  }
  Linear layer;
  CTXEMBED_ASSIGN_OR_RETURN(RowMatrixXf weight,
                            weights.ReadMatrix(w, info->shape[0], input_size));
  layer.weight_ = weight;
  const std::string b = config.prefix + ".bias";
  if (weights.Has(b)) {
    CTXEMBED_ASSIGN_OR_RETURN(layer.bias_,
                              weights.ReadVector(b, info->shape[0]));
  } else {
    layer.bias_.setZero(info->shape[0]);
  }
  layer.activation_ = config.activation;
  return layer;
}

void Linear::Apply(const Eigen::Ref<const Eigen::MatrixXf>& x,
                   Eigen::MatrixXf* y) const {
  y->resize(weight_.rows(), x.cols());
  y->noalias() = weight_ * x;
  y->colwise() += bias_;
  switch (activation_) {
    case Activation::kNone:
      break;
    case Activation::kRelu:
      *y = y->cwiseMax(0.0f);
      break;
    case Activation::kTanh:
      *y = y->array().tanh().matrix();
      break;
    case Activation::kSigmoid:
      *y = y->array().logistic().matrix();
      break;
  }
}

}  // namespace ctxembed
