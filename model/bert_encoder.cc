#include "model/bert_encoder.h"

#include <cmath>
#include <unsupported/Eigen/SpecialFunctions>

#include "absl/strings/str_cat.h"
#include "model/status_macros.h"

namespace ctxembed {
namespace {

absl::StatusOr<Eigen::VectorXf> ReadBias(const SafeTensors& w,
                                         const std::string& name, int size) {
  return w.ReadVector(name, size);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BertEncoder>> BertEncoder::Create(
    const BertConfig& config, const SafeTensors& weights) {
  const int h = config.hidden_size;
  if (h <= 0 || config.num_hidden_layers <= 0 ||
      config.num_attention_heads <= 0 || config.intermediate_size <= 0 ||
      config.max_position_embeddings <= 0 || config.type_vocab_size <= 0) {
    return absl::InvalidArgumentError(
        "hidden_size, num_hidden_layers, num_attention_heads, "
        "intermediate_size, max_position_embeddings and type_vocab_size must "
        "be positive");
  }
  if (h % config.num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hidden_size ", h, " is not a multiple of num_attention_heads ",
        config.num_attention_heads));
  }
  std::unique_ptr<BertEncoder> e(new BertEncoder());
  e->config_ = config;
  const std::string& p = config.prefix;
  auto read_norm = [&](const std::string& name) -> absl::StatusOr<Norm> {
    Norm n;
    const bool old =
        !weights.Has(name + ".weight") && weights.Has(name + ".gamma");
    CTXEMBED_ASSIGN_OR_RETURN(
        n.gamma, weights.ReadVector(name + (old ? ".gamma" : ".weight"), h));
    CTXEMBED_ASSIGN_OR_RETURN(
        n.beta, weights.ReadVector(name + (old ? ".beta" : ".bias"), h));
    return n;
  };
  auto read_dense = [&](const std::string& name, int out,
                        int in) -> absl::StatusOr<Dense> {
    CTXEMBED_ASSIGN_OR_RETURN(RowMatrixXf w,
                              weights.ReadMatrix(name + ".weight", out, in));
    Dense d;
    d.weight =
        PackedMatrix(Eigen::MatrixXf(w), DefaultKernels(), config.precision);
    CTXEMBED_ASSIGN_OR_RETURN(d.bias, ReadBias(weights, name + ".bias", out));
    return d;
  };

  CTXEMBED_ASSIGN_OR_RETURN(
      RowMatrixXf position,
      weights.ReadMatrix(p + "embeddings.position_embeddings.weight",
                         config.max_position_embeddings, h));
  e->position_ = position.transpose();
  CTXEMBED_ASSIGN_OR_RETURN(
      RowMatrixXf types,
      weights.ReadMatrix(p + "embeddings.token_type_embeddings.weight",
                         config.type_vocab_size, h));
  e->token_type_ = types.row(0).transpose();
  CTXEMBED_ASSIGN_OR_RETURN(e->embedding_norm_,
                            read_norm(p + "embeddings.LayerNorm"));
  for (int i = 0; i < config.num_hidden_layers; ++i) {
    const std::string l = absl::StrCat(p, "encoder.layer.", i, ".");
    Layer layer;
    // Query, key and value as one [3h x h] matrix: one GEMM for the three.
    Eigen::MatrixXf qkv(3 * h, h);
    Eigen::VectorXf qkv_bias(3 * h);
    const char* parts[] = {"query", "key", "value"};
    for (int k = 0; k < 3; ++k) {
      const std::string name = absl::StrCat(l, "attention.self.", parts[k]);
      CTXEMBED_ASSIGN_OR_RETURN(RowMatrixXf w,
                                weights.ReadMatrix(name + ".weight", h, h));
      CTXEMBED_ASSIGN_OR_RETURN(Eigen::VectorXf b,
                                ReadBias(weights, name + ".bias", h));
      qkv.middleRows(k * h, h) = w;
      qkv_bias.segment(k * h, h) = b;
    }
    layer.qkv.weight = PackedMatrix(qkv, DefaultKernels(), config.precision);
    layer.qkv.bias = qkv_bias;
    CTXEMBED_ASSIGN_OR_RETURN(layer.attention_out,
                              read_dense(l + "attention.output.dense", h, h));
    CTXEMBED_ASSIGN_OR_RETURN(layer.attention_norm,
                              read_norm(l + "attention.output.LayerNorm"));
    CTXEMBED_ASSIGN_OR_RETURN(
        layer.intermediate,
        read_dense(l + "intermediate.dense", config.intermediate_size, h));
    CTXEMBED_ASSIGN_OR_RETURN(
        layer.output,
        read_dense(l + "output.dense", h, config.intermediate_size));
    CTXEMBED_ASSIGN_OR_RETURN(layer.output_norm,
                              read_norm(l + "output.LayerNorm"));
    e->layers_.push_back(std::move(layer));
  }
  return e;
}

void BertEncoder::Apply(const Dense& d, const Eigen::MatrixXf& in,
                        Eigen::VectorXf& rhs, Eigen::MatrixXf* out) {
  out->resize(d.weight.rows(), in.cols());
  out->colwise() = d.bias;
  d.weight.MultiplyAdd(in, *out, rhs);
}

void BertEncoder::LayerNorm(const Norm& n, Eigen::MatrixXf* x) const {
  const float eps = static_cast<float>(config_.layer_norm_eps);
  const float inv_h = 1.0f / static_cast<float>(x->rows());
  for (Eigen::Index c = 0; c < x->cols(); ++c) {
    auto col = x->col(c);
    const float mean = col.sum() * inv_h;
    col.array() -= mean;
    const float var = col.squaredNorm() * inv_h;
    col = (col.array() * (1.0f / std::sqrt(var + eps)) * n.gamma.array() +
           n.beta.array())
              .matrix();
  }
}

void BertEncoder::Attention(const SequenceBatch& batch, BertScratch& s) const {
  const int h = config_.hidden_size;
  const int heads = config_.num_attention_heads;
  const int d = h / heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  s.context.resize(h, s.qkv.cols());
  for (int i = 0; i < batch.size(); ++i) {
    const int off = batch.offset(i);
    const int len = batch.length(i);
    if (len == 0) continue;
    for (int head = 0; head < heads; ++head) {
      const auto q = s.qkv.block(head * d, off, d, len);
      const auto k = s.qkv.block(h + head * d, off, d, len);
      const auto v = s.qkv.block(2 * h + head * d, off, d, len);
      // scores(j, t): key j against query t; softmax down each column.
      s.scores.resize(len, len);
      s.scores.noalias() = k.transpose() * q;
      for (int t = 0; t < len; ++t) {
        auto col = s.scores.col(t);
        col *= scale;
        const float max = col.maxCoeff();
        col = (col.array() - max).exp().matrix();
        col /= col.sum();
      }
      s.context.block(head * d, off, d, len).noalias() = v * s.scores;
    }
  }
}

void BertEncoder::Forward(const SequenceBatch& batch, BertScratch& s,
                          Eigen::MatrixXf* x) const {
  for (int i = 0; i < batch.size(); ++i) {
    const int off = batch.offset(i);
    for (int t = 0; t < batch.length(i); ++t) {
      x->col(off + t) += position_.col(t) + token_type_;
    }
  }
  LayerNorm(embedding_norm_, x);
  const float inv_sqrt2 = static_cast<float>(M_SQRT1_2);
  for (const Layer& layer : layers_) {
    Apply(layer.qkv, *x, s.rhs, &s.qkv);
    Attention(batch, s);
    Apply(layer.attention_out, s.context, s.rhs, &s.sum);
    s.sum += *x;
    LayerNorm(layer.attention_norm, &s.sum);
    x->swap(s.sum);
    Apply(layer.intermediate, *x, s.rhs, &s.intermediate);
    // Exact GELU: x * (1 + erf(x / sqrt(2))) / 2.
    s.intermediate.array() =
        0.5f * s.intermediate.array() *
        (1.0f + (s.intermediate.array() * inv_sqrt2).erf());
    Apply(layer.output, s.intermediate, s.rhs, &s.sum);
    s.sum += *x;
    LayerNorm(layer.output_norm, &s.sum);
    x->swap(s.sum);
  }
}

double BertEncoder::Flops(const std::vector<int>& lengths) const {
  const double h = config_.hidden_size;
  const double inter = config_.intermediate_size;
  double tokens = 0, attention = 0;
  for (int len : lengths) {
    tokens += len;
    attention += 4.0 * h * len * len;  // QK^T and PV
  }
  const double dense = 2.0 * tokens * (4 * h * h + 2 * h * inter);
  return config_.num_hidden_layers * (dense + attention);
}

}  // namespace ctxembed
