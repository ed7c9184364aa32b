#include "model/comparator.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "model/status_macros.h"

namespace ctxembed {

absl::StatusOr<Comparator> Comparator::Create(const ComparatorConfig& config,
                                              int dim,
                                              const SafeTensors& weights) {
  Comparator c;
  c.config_ = config;
  int in = 4 * dim;
  for (const LinearConfig& layer : config.layers) {
    CTXEMBED_ASSIGN_OR_RETURN(Linear l, Linear::Create(layer, in, weights));
    in = l.output_size();
    c.layers_.push_back(std::move(l));
  }
  const bool single = config.output != ComparatorOutput::kSoftmax;
  if ((single && in != 1) || (!single && config.score_class >= in)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "comparator: the last layer has ", in, " outputs; output \"",
        ComparatorOutputName(config.output), "\" needs ",
        single ? "1"
               : absl::StrCat("more than score_class ", config.score_class)));
  }
  return c;
}

std::vector<float> Comparator::Score(const Eigen::MatrixXf& u,
                                     const Eigen::MatrixXf& v) const {
  const Eigen::Index d = u.rows(), n = u.cols();
  Eigen::MatrixXf x(4 * d, n), y;
  x.topRows(d) = u;
  x.middleRows(d, d) = v;
  x.middleRows(2 * d, d) = (u - v).cwiseAbs();
  x.bottomRows(d) = u.cwiseProduct(v);
  for (const Linear& layer : layers_) {
    layer.Apply(x, &y);
    x.swap(y);
  }
  std::vector<float> scores(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    switch (config_.output) {
      case ComparatorOutput::kIdentity:
        scores[i] = x(0, i);
        break;
      case ComparatorOutput::kSigmoid:
        scores[i] = 1.0f / (1.0f + std::exp(-x(0, i)));
        break;
      case ComparatorOutput::kSoftmax: {
        const float max = x.col(i).maxCoeff();
        const float sum = (x.col(i).array() - max).exp().sum();
        scores[i] = std::exp(x(config_.score_class, i) - max) / sum;
        break;
      }
    }
  }
  return scores;
}

}  // namespace ctxembed
