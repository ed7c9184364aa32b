#include "model/recurrent_module.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "model/parallel_runner.h"
#include "model/status_macros.h"

namespace ctxembed {

// Columns 4 KB apart fall in one set of the L1 cache, and the GEMM's
// micro-kernel stores 12 columns at a time: 24 lines in sets of 8 ways
// (bench/gemm_bench, a 1024-row output at depth 100: 99 GFLOP/s unpadded,
// 107-108 at 992 or 1056 rows).
int GateStride(int gate_rows) {
  return gate_rows % 1024 == 0 ? gate_rows + 16 : gate_rows;
}

absl::string_view RecurrentKindName(RecurrentKind kind) {
  return kind == RecurrentKind::kLstm ? "lstm" : "gru";
}

absl::StatusOr<std::unique_ptr<RecurrentModule>> RecurrentModule::Create(
    const RecurrentConfig& config, const SafeTensors& weights,
    const KernelTable& kernels) {
  if (config.input_size < 1 || config.hidden_size < 1 ||
      config.num_layers < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "encoder module ", config.prefix,
        ": input_size, hidden_size and num_layers must be positive"));
  }
  std::unique_ptr<RecurrentModule> m(new RecurrentModule(
      config, config.kind == RecurrentKind::kLstm, kernels));
  if (config.residual && config.concat_input) {
    return absl::InvalidArgumentError(
        absl::StrCat("encoder module ", config.prefix,
                     ": residual and concat_input exclude each other"));
  }
  if (config.residual && m->output_size() != config.input_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("encoder module ", config.prefix,
                     ": residual needs input_size (", config.input_size,
                     ") equal to the output size (", m->output_size(), ")"));
  }
  for (int k = 0; k < config.num_layers; ++k) {
    CTXEMBED_RETURN_IF_ERROR(m->LoadLayer(weights, k));
  }
  return m;
}

absl::Status RecurrentModule::LoadLayer(const SafeTensors& weights, int k) {
  const int H = config_.hidden_size, GH = gates_ * H, D = directions();
  Layer layer;
  layer.input_size = k == 0 ? config_.input_size : D * H;
  layer.b_in.resize(D * GH);
  for (int d = 0; d < D; ++d) {
    const std::string suffix = absl::StrCat("_l", k, d == 1 ? "_reverse" : "");
    const std::string p = config_.prefix + ".";
    CTXEMBED_ASSIGN_OR_RETURN(
        RowMatrixXf w_ih,
        weights.ReadMatrix(p + "weight_ih" + suffix, GH, layer.input_size));
    CTXEMBED_ASSIGN_OR_RETURN(
        RowMatrixXf w_hh, weights.ReadMatrix(p + "weight_hh" + suffix, GH, H));
    CTXEMBED_ASSIGN_OR_RETURN(Eigen::VectorXf b_ih,
                              weights.ReadVector(p + "bias_ih" + suffix, GH));
    CTXEMBED_ASSIGN_OR_RETURN(Eigen::VectorXf b_hh,
                              weights.ReadVector(p + "bias_hh" + suffix, GH));
    layer.w_ih[d] =
        PackedMatrix(Eigen::MatrixXf(w_ih), kernels_, config_.precision);
    layer.w_hh[d] =
        PackedMatrix(Eigen::MatrixXf(w_hh), kernels_, config_.precision);
    if (lstm_) {
      layer.b_in.segment(d * GH, GH) = b_ih + b_hh;
    } else {
      layer.b_in.segment(d * GH, GH) = b_ih;
      layer.b_hh[d] = b_hh;
    }
  }
  layers_.push_back(std::move(layer));
  return absl::OkStatus();
}

void RecurrentModule::RunDirection(const Layer& layer, int d,
                                   const Eigen::MatrixXf& in,
                                   const SequenceBatch& batch,
                                   RecurrentScratch::Direction& s, int row0,
                                   Eigen::MatrixXf& out) const {
  const int H = config_.hidden_size, GH = gates_ * H;
  const int B = batch.size(), N = static_cast<int>(in.cols());
  const int T = batch.max_length();
  const bool reverse = d == 1;
  const auto order = batch.order();
  // The tokens in step order: step t's tokens (one per sentence still
  // running, longest sentence first) in consecutive columns, so that each
  // step's gates are a block of the input projection, updated in place.
  s.columns.resize(N);
  for (int t = 0, k = 0; t < T; ++t) {
    for (int i = 0; i < batch.active(t); ++i, ++k) {
      const int sent = order[i];
      s.columns[k] =
          batch.offset(sent) + (reverse ? batch.length(sent) - 1 - t : t);
    }
  }
  // Modules of one tower share this scratch: an LSTM of hidden size 6 and
  // a GRU of hidden size 8 both have 24 gate rows, so the state's height is
  // checked on its own.
  const int stride = GateStride(GH);
  if (s.hidden_gates.rows() != stride || s.h.rows() != H ||
      s.hidden_gates.cols() < B) {
    s.hidden_gates.resize(stride, B);
    s.h.resize(H, B);
    s.c.resize(H, B);
  }
  s.h.leftCols(B).setZero();
  s.c.leftCols(B).setZero();
  // The input projections (one GEMM) for a run of steps at a time, at least
  // kChunkColumns tokens: large enough for the GEMM to stream W_ih
  // efficiently, small enough for the gates to stay in the core's cache
  // between the projection, the recurrent GEMMs and the cell.
  const float* bias = layer.b_in.data() + d * GH;
  const int chunk_columns = std::max(kChunkColumns, B);
  s.step_input.resize(in.rows(), std::min(N, chunk_columns + B));
  s.projection.resize(stride, s.step_input.cols());
  auto projection = s.projection.topRows(GH);
  for (int t0 = 0, first0 = 0; t0 < T;) {
    int t1 = t0, width = 0;
    while (t1 < T &&
           (width == 0 || width + batch.active(t1) <= chunk_columns)) {
      width += batch.active(t1++);
    }
    for (int k = 0; k < width; ++k) {
      std::copy_n(in.col(s.columns[first0 + k]).data(), in.rows(),
                  s.step_input.col(k).data());
    }
    layer.w_ih[d].Affine(s.step_input.leftCols(width), bias,
                         projection.leftCols(width), s.packed_rhs);
    for (int t = t0, first = 0; t < t1; ++t) {
      const int b = batch.active(t);
      Step(layer, d, t, b, projection.middleCols(first, b), s);
      for (int i = 0; i < b; ++i) {
        std::copy_n(
            s.h.col(i).data(), H,
            out.col(s.columns[first0 + first + i]).data() + row0 + d * H);
      }
      first += b;
    }
    t0 = t1;
    first0 += width;
  }
}

void RecurrentModule::Step(const Layer& layer, int d, int t, int b,
                           Eigen::Ref<Eigen::MatrixXf> gates,
                           RecurrentScratch::Direction& s) const {
  const int H = config_.hidden_size, GH = gates_ * H;
  // gates and hidden_gates: GateStride(GH) floats per column.
  const ptrdiff_t ldg = gates.outerStride();
  // W_hh (1 MB at hidden 256) does not fit in the core's L2 beside the
  // rest: its rows are read last to first every other step, so that each
  // step starts on the rows the previous one left in cache (bench/gemm_bench
  // lstm_step_h256_b1: 43 -> 46 GFLOP/s).
  const RowOrder order = AlternatingRowOrder(t);
  // One GEMM per step for the whole batch (h is zero at t = 0).
  if (lstm_) {
    if (t > 0) {
      layer.w_hh[d].MultiplyAdd(s.h.leftCols(b), gates, s.packed_rhs, order);
    }
    kernels_.lstm_cell(gates.data(), ldg, s.c.data(), s.h.data(), H, H, b);
    return;
  }
  auto hidden_gates = s.hidden_gates.topRows(GH).leftCols(b);
  if (t > 0) {
    layer.w_hh[d].Affine(s.h.leftCols(b), layer.b_hh[d].data(), hidden_gates,
                         s.packed_rhs, order);
  } else {
    hidden_gates.colwise() = layer.b_hh[d];
  }
  kernels_.gru_cell(gates.data(), hidden_gates.data(), ldg, s.h.data(), H, H, b,
                    t == 0);
}

void RecurrentModule::Forward(const Eigen::MatrixXf& x,
                              const SequenceBatch& batch,
                              RecurrentScratch& scratch, Eigen::MatrixXf* y,
                              Eigen::MatrixXf* last) const {
  const int N = batch.total_tokens(), H = config_.hidden_size;
  const int D = directions();
  // With concat_input the top layer writes below the input's rows.
  const int top_row0 = config_.concat_input ? config_.input_size : 0;
  const Eigen::MatrixXf* in = &x;
  for (size_t k = 0; k < layers_.size(); ++k) {
    const Layer& layer = layers_[k];
    const bool top = k + 1 == layers_.size();
    Eigen::MatrixXf& out = top ? *y : scratch.layer_out[k % 2];
    out.resize(top ? output_size() : state_size(), N);
    const int row0 = top ? top_row0 : 0;
    auto run = [&](int d) {
      RunDirection(layer, d, *in, batch, scratch.direction[d], row0, out);
    };
    if (D == 2) {
      // The directions write disjoint rows of `out`: one per core.
      ParallelRunner::Shared().Run([&] { run(0); }, [&] { run(1); });
    } else {
      run(0);
    }
    in = &out;
  }
  if (last != nullptr) {
    last->setZero(state_size(), batch.size());
    for (int s = 0; s < batch.size(); ++s) {
      const int len = batch.length(s);
      if (len == 0) continue;
      last->col(s).head(H) =
          y->col(batch.offset(s) + len - 1).segment(top_row0, H);
      if (D == 2) {
        last->col(s).tail(H) = y->col(batch.offset(s)).segment(top_row0 + H, H);
      }
    }
  }
  if (config_.residual) *y += x;
  if (config_.concat_input) y->topRows(config_.input_size) = x;
}

double RecurrentModule::Flops(int64_t tokens) const {
  const double H = config_.hidden_size, GH = gates_ * H;
  double flops = 0;
  for (const Layer& layer : layers_) {
    flops += directions() * 2.0 * GH * (layer.input_size + H) * tokens;
  }
  return flops;
}

}  // namespace ctxembed
