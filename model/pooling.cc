#include "model/pooling.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace ctxembed {
namespace {

// fastText's getSentenceVector for unsupervised models, operation for
// operation: a float sum of squares in index order, std::sqrt on float, a
// multiply by the float nearest 1/norm, then by the float nearest 1/count.
// Eigen's reductions would reorder the sums and change the last bits.
void PoolFastText(const Eigen::Ref<const Eigen::MatrixXf>& tokens,
                  Eigen::Ref<Eigen::VectorXf> out) {
  const Eigen::Index dim = tokens.rows();
  float* s = out.data();
  int count = 0;
  for (Eigen::Index t = 0; t < tokens.cols(); ++t) {
    const float* v = tokens.col(t).data();
    float sum = 0.0f;
    for (Eigen::Index j = 0; j < dim; ++j) sum += v[j] * v[j];
    const float norm = std::sqrt(sum);
    if (!(norm > 0.0f)) continue;
    const float scale = static_cast<float>(1.0 / static_cast<double>(norm));
    for (Eigen::Index j = 0; j < dim; ++j) {
      const float scaled = v[j] * scale;
      s[j] += scaled;
    }
    ++count;
  }
  if (count > 0) {
    const float scale = static_cast<float>(1.0 / static_cast<double>(count));
    for (Eigen::Index j = 0; j < dim; ++j) s[j] *= scale;
  }
}

// The sum of the columns, one contiguous column at a time (Eigen's
// rowwise() reductions walk a column-major matrix along its rows, a stride
// apart: 1.5% of a recurrent encoder's time at batch 32 x 64 tokens).
void SumColumns(const Eigen::Ref<const Eigen::MatrixXf>& tokens,
                Eigen::Ref<Eigen::VectorXf> out) {
  out = tokens.col(0);
  for (Eigen::Index c = 1; c < tokens.cols(); ++c) out += tokens.col(c);
}

}  // namespace

absl::StatusOr<Pooling> ParsePooling(absl::string_view name) {
  if (name == "fasttext") return Pooling::kFastText;
  if (name == "mean") return Pooling::kMean;
  if (name == "max") return Pooling::kMax;
  if (name == "last") return Pooling::kLast;
  if (name == "sif") return Pooling::kSif;
  if (name == "cls") return Pooling::kCls;
  if (name == "mean_sqrt_len") return Pooling::kMeanSqrtLen;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown pooling \"", name,
                   "\"; known: fasttext, mean, max, last, sif, cls, "
                   "mean_sqrt_len"));
}

absl::string_view PoolingName(Pooling pooling) {
  switch (pooling) {
    case Pooling::kFastText:
      return "fasttext";
    case Pooling::kMean:
      return "mean";
    case Pooling::kMax:
      return "max";
    case Pooling::kLast:
      return "last";
    case Pooling::kSif:
      return "sif";
    case Pooling::kCls:
      return "cls";
    case Pooling::kMeanSqrtLen:
      return "mean_sqrt_len";
  }
  return "unknown";
}

void Pool(const Eigen::Ref<const Eigen::MatrixXf>& tokens, Pooling pooling,
          Eigen::Ref<Eigen::VectorXf> out) {
  out.setZero();
  if (tokens.cols() == 0) return;
  switch (pooling) {
    case Pooling::kFastText:
      PoolFastText(tokens, out);
      return;
    case Pooling::kMean:
      SumColumns(tokens, out);
      out /= static_cast<float>(tokens.cols());
      return;
    case Pooling::kMax:
      out = tokens.col(0);
      for (Eigen::Index c = 1; c < tokens.cols(); ++c)
        out = out.cwiseMax(tokens.col(c));
      return;
    case Pooling::kCls:
      out = tokens.col(0);
      return;
    case Pooling::kMeanSqrtLen:
      SumColumns(tokens, out);
      out /= std::sqrt(static_cast<float>(tokens.cols()));
      return;
    case Pooling::kLast:  // produced by the encoder
    case Pooling::kSif:   // needs the words: SifWeights::Pool
      return;
  }
}

void NormalizeL2(Eigen::Ref<Eigen::VectorXf> v) {
  double sum = 0.0;
  for (Eigen::Index i = 0; i < v.size(); ++i) sum += double(v[i]) * v[i];
  if (sum > 0.0) v *= static_cast<float>(1.0 / std::sqrt(sum));
}

}  // namespace ctxembed
