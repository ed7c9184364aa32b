#include "model/bert_encoder.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "model/parallel_runner.h"
#include "model/status_macros.h"

namespace ctxembed {
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
  e->kernels_ = &DefaultKernels();
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
    CTXEMBED_ASSIGN_OR_RETURN(Eigen::VectorXf b,
                              weights.ReadVector(name + ".bias", out));
    return MakeDense(Eigen::MatrixXf(w), std::move(b), config.precision);
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
                                weights.ReadVector(name + ".bias", h));
      qkv.middleRows(k * h, h) = w;
      qkv_bias.segment(k * h, h) = b;
    }
    layer.qkv = MakeDense(qkv, std::move(qkv_bias), config.precision);
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

BertEncoder::Dense BertEncoder::MakeDense(const Eigen::MatrixXf& w,
                                          Eigen::VectorXf bias,
                                          Precision precision) {
  Dense d;
  d.rows = static_cast<int>(w.rows());
  d.weight = PackedMatrix(w, DefaultKernels(), precision);
  if (const int align = d.weight.row_alignment(); align > 0) {
    d.split = std::min(d.rows, (d.rows / 2 + align - 1) / align * align);
  }
  d.bias = std::move(bias);
  return d;
}

namespace {

// Runs part(0) here and part(1) on the helper core when it is free; with
// `parallel` false (too little work to repay the hand-off), both here.
template <typename Part>
void InHalves(Part part, bool parallel = true) {
  if (!parallel) {
    part(0);
    part(1);
    return;
  }
  ParallelRunner::Shared().Run([&] { part(0); }, [&] { part(1); });
}

// Below this many tokens, layer norms and attention run on one core. From
// 4 tokens on, halving them beats the hand-off (MiniLM-L6 shape, batch 1,
// medians of 10 interleaved runs: 4 tokens 1.00 -> 0.97 ms, 8 tokens 1.35
// -> 1.28 ms, 16 tokens 2.23 -> 2.17 ms against a threshold of 64).
constexpr int kParallelTokens = 4;

// Most columns per step of a dense layer: bias, GEMM and activation run on
// one block of columns while it is in cache.
constexpr int kColumnBlock = 96;

// The first n columns of m, [rows x n]; m grows to hold them and never
// shrinks (see BertScratch).
Eigen::Block<Eigen::MatrixXf, Eigen::Dynamic, Eigen::Dynamic, true> Columns(
    Eigen::MatrixXf& m, int rows, int n) {
  if (m.rows() != rows || m.cols() < n) {
    m.resize(rows, std::max<Eigen::Index>(n, m.rows() == rows ? m.cols() : 0));
  }
  return m.leftCols(n);
}

}  // namespace

void BertEncoder::Apply(const Dense& d, Eigen::Ref<const Eigen::MatrixXf> in,
                        bool gelu, BertScratch& s,
                        Eigen::Ref<Eigen::MatrixXf> out) const {
  const int n = static_cast<int>(in.cols());
  // Bias, GEMM and activation over rows [first, first + count) of the
  // columns [c0, c1), a block of columns at a time. The blocks are as even
  // as possible: 100 columns are two blocks of 50, not 96 and 4 (a narrow
  // block streams W for too few columns).
  auto run = [&](int part, int first, int count, int c0, int c1) {
    const int blocks = (c1 - c0 + kColumnBlock - 1) / kColumnBlock;
    for (int q = 0, c = c0; q < blocks; ++q) {
      const int width = (c1 - c0) / blocks + (q < (c1 - c0) % blocks ? 1 : 0);
      Eigen::Ref<Eigen::MatrixXf> block = out.block(first, c, count, width);
      d.weight.AffineRows(first, count, in.middleCols(c, width),
                          d.bias.data() + first, block, s.rhs[part]);
      if (gelu) {
        for (int j = 0; j < width; ++j) {
          kernels_->gelu(block.col(j).data(), count);
        }
      }
      c += width;
    }
  };
  if (n >= 2 * kColumnBlock || d.split == 0) {
    // Many columns: each core takes half of them, all rows (the right-hand
    // side is packed once, by its own core).
    // Equal halves: an uneven split leaves one core idle.
    const int half = n / 2;
    InHalves([&](int h) {
      if (h == 0) run(0, 0, d.rows, 0, half);
      if (h == 1) run(1, 0, d.rows, half, n);
    });
  } else {
    InHalves([&](int h) {
      if (h == 0) run(0, 0, d.split, 0, n);
      if (h == 1 && d.split < d.rows) run(1, d.split, d.rows - d.split, 0, n);
    });
  }
}

void BertEncoder::AddNorm(const Norm& n,
                          Eigen::Ref<const Eigen::MatrixXf> residual,
                          Eigen::MatrixXf* x) const {
  const int cols = static_cast<int>(x->cols()), half = cols / 2;
  const int rows = static_cast<int>(x->rows());
  const float eps = static_cast<float>(config_.layer_norm_eps);
  InHalves(
      [&](int h) {
        const int first = h == 0 ? 0 : half;
        const int count = h == 0 ? half : cols - half;
        if (count == 0) return;
        kernels_->layer_norm_columns(
            x->col(first).data(), rows,
            residual.size() == 0 ? nullptr : residual.col(first).data(),
            residual.outerStride(), rows, count, n.gamma.data(), n.beta.data(),
            eps);
      },
      cols >= kParallelTokens);
}

void BertEncoder::Attention(const SequenceBatch& batch, int first_head,
                            int end_head, int part, BertScratch& s) const {
  const int h = config_.hidden_size;
  const int d = h / config_.num_attention_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const ptrdiff_t ld = s.qkv.rows();  // 3h
  std::vector<float>& scores = s.scores[part];
  std::vector<float>& inv_sums = s.inv_sums[part];
  std::vector<float>& packed = s.packed[part];
  Eigen::VectorXf& rhs = s.rhs[part];
  const float* zeros = s.zeros.data();  // Forward sized it
  for (int i = 0; i < batch.size(); ++i) {
    const int off = batch.offset(i);
    const int len = batch.length(i);
    if (len == 0) continue;
    if (scores.size() < static_cast<size_t>(len) * len) {
      scores.resize(static_cast<size_t>(len) * len);
    }
    if (inv_sums.size() < static_cast<size_t>(len)) inv_sums.resize(len);
    for (int head = first_head; head < end_head; ++head) {
      const float* q = s.qkv.data() + off * ld + head * d;
      const float* k = q + h;
      const float* v = q + 2 * h;
      // scores(t, j) = q_t . k_j: Q^T [len x d] packed, times K [d x len].
      // Row t (query t) runs along the keys, so that the product below
      // reads the scores as they lie.
      packed.resize(kernels_->packed_floats(len, d));
      kernels_->pack(q, ld, 1, len, d, packed.data());
      rhs.resize(std::max<Eigen::Index>(rhs.size(),
                                        kernels_->gemm_scratch_floats(d, len)));
      kernels_->gemm(packed.data(), len, d, k, ld, len, scores.data(), len,
                     zeros, rhs.data(), /*backward=*/false);
      kernels_->softmax_rows(scores.data(), len, len, len, scale,
                             inv_sums.data());
      // context_t = sum_j p(t, j) v_j: V [d x len] packed, times the
      // weights (query t's, key j at scores[t + j * len]: k-major), then
      // the softmax's division, on d floats per query instead of len.
      packed.resize(kernels_->packed_floats(d, len));
      kernels_->pack(v, 1, ld, d, len, packed.data());
      float* out = s.context.data() + off * h + head * d;
      kernels_->gemm_rows(packed.data(), d, len, scores.data(), len, len, out,
                          h, zeros);
      for (int t = 0; t < len; ++t) {
        Eigen::Map<Eigen::VectorXf>(out + t * h, d) *= inv_sums[t];
      }
    }
  }
}

void BertEncoder::Forward(const SequenceBatch& batch, BertScratch& s,
                          Eigen::MatrixXf* x) const {
  // Callers keep sentences within max_position_embeddings (the model's
  // max_tokens); the bound here only keeps a slip from reading past the
  // table.
  const int positions = static_cast<int>(position_.cols());
  for (int i = 0; i < batch.size(); ++i) {
    const int off = batch.offset(i);
    for (int t = 0; t < batch.length(i); ++t) {
      x->col(off + t) +=
          position_.col(std::min(t, positions - 1)) + token_type_;
    }
  }
  AddNorm(embedding_norm_, Eigen::MatrixXf(), x);
  const int heads = config_.num_attention_heads;
  // Attention's GEMM biases: rows of a sentence's scores, or of a head.
  const int most_rows =
      std::max(batch.max_length(), config_.hidden_size / heads);
  if (s.zeros.size() < most_rows) s.zeros.setZero(most_rows);
  const int n = batch.total_tokens(), hidden = config_.hidden_size;
  auto qkv = Columns(s.qkv, 3 * hidden, n);
  auto context = Columns(s.context, hidden, n);
  auto sum = Columns(s.sum, hidden, n);
  auto intermediate = Columns(s.intermediate, config_.intermediate_size, n);
  for (const Layer& layer : layers_) {
    Apply(layer.qkv, *x, false, s, qkv);
    InHalves(
        [&](int h) {
          Attention(batch, h == 0 ? 0 : heads / 2, h == 0 ? heads / 2 : heads,
                    h, s);
        },
        n >= kParallelTokens);
    // x = LayerNorm(x + W context + b): the sum x + y is y + x exactly.
    Apply(layer.attention_out, context, false, s, sum);
    AddNorm(layer.attention_norm, sum, x);
    Apply(layer.intermediate, *x, true, s, intermediate);
    Apply(layer.output, intermediate, false, s, sum);
    AddNorm(layer.output_norm, sum, x);
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
