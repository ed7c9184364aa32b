// One PyTorch nn.LSTM or nn.GRU module (any number of layers, uni- or
// bidirectional), run over a batch of variable-length sentences.
#ifndef CTXEMBED_MODEL_RECURRENT_MODULE_H_
#define CTXEMBED_MODEL_RECURRENT_MODULE_H_

#include <Eigen/Core>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/kernels.h"
#include "model/packed_matrix.h"
#include "model/safetensors.h"
#include "model/sequence_batch.h"

namespace ctxembed {

// nn.LSTM or nn.GRU ("lstm", "gru" in config.json).
enum class RecurrentKind { kLstm, kGru };
absl::string_view RecurrentKindName(RecurrentKind kind);

// The config.json entry of one encoder module.
struct RecurrentConfig {
  RecurrentKind kind = RecurrentKind::kLstm;
  std::string prefix;  // state_dict prefix: "{prefix}.weight_ih_l0", ...
  int input_size = 0;
  int hidden_size = 0;
  int num_layers = 1;
  bool bidirectional = false;
  // Add the module's input to its output (needs input_size == output size).
  bool residual = false;
  // Output the module's input followed by the recurrent output (a dense skip
  // connection, DenseNet-style): output size input_size + directions x
  // hidden_size. Exclusive with `residual`.
  bool concat_input = false;
  // The model's "precision" (config.json, top level): how W_ih and W_hh are
  // stored and multiplied.
  Precision precision = Precision::kFp32;
};

// Rows allocated per column of a gate matrix ([G*H x n]): G*H, plus one
// cache line when G*H floats are a multiple of 4 KB (the GEMM's stores
// would otherwise share a few L1 sets; see the .cc).
int GateStride(int gate_rows);

// Per-thread buffers for RecurrentModule::Forward; they grow to the largest
// batch seen and are reused, so a warm thread allocates nothing.
struct RecurrentScratch {
  struct Direction {
    Eigen::MatrixXf step_input;  // [input x tokens]: x in step order
    // The gate matrices have G*H rows in use, a few more when padded (see
    // GateStride): use topRows(G*H).
    Eigen::MatrixXf projection;    // [G*H x tokens]: W_ih x + b, step order;
                                   // each step's gates, updated in place
    Eigen::MatrixXf hidden_gates;  // [G*H x batch]: GRU's W_hh h + b_hh
    Eigen::MatrixXf h, c;          // [H x batch] state, longest-first order
    std::vector<int> columns;      // token column of each step-order column
    Eigen::VectorXf packed_rhs;    // GEMM kernel's packed right-hand side
  };
  Eigen::MatrixXf layer_out[2];
  Direction direction[2];
};

// Immutable after Create; thread-safe (scratch is the caller's).
//
// Semantics are PyTorch's packed sequences: the forward direction runs
// t = 0 .. len-1 of each sentence, the backward direction len-1 .. 0 of each
// sentence (it starts at the sentence's own last token), so padding never
// changes any output and a sentence's vectors do not depend on its batch.
// Gate order is PyTorch's: i, f, g, o for LSTM; r, z, n for GRU.
class RecurrentModule {
 public:
  // Reads "{prefix}.weight_ih_l{k}[_reverse]", weight_hh, bias_ih, bias_hh
  // with the shapes PyTorch gives them. INVALID_ARGUMENT / NOT_FOUND naming
  // the tensor and the expected and actual shapes on mismatch.
  // The kernels (the CPU level) are fixed here: weights are packed for
  // them.
  static absl::StatusOr<std::unique_ptr<RecurrentModule>> Create(
      const RecurrentConfig& config, const SafeTensors& weights,
      const KernelTable& kernels = DefaultKernels());

  int input_size() const { return config_.input_size; }
  int hidden_size() const { return config_.hidden_size; }
  int directions() const { return config_.bidirectional ? 2 : 1; }
  // The recurrent layers' output: directions x hidden_size.
  int state_size() const { return directions() * config_.hidden_size; }
  // The module's output: state_size(), after the input with concat_input.
  int output_size() const {
    return state_size() + (config_.concat_input ? config_.input_size : 0);
  }
  const RecurrentConfig& config() const { return config_; }

  // x: [input_size x batch.total_tokens()], sentence-major columns.
  // Writes *y: [output_size x total_tokens]. If `last` is not null, also
  // writes PyTorch's h_n of the top layer, [state_size x batch.size()]:
  // forward state after each sentence's last token, backward state after
  // its first (zero for an empty sentence); before any residual or
  // concatenation.
  void Forward(const Eigen::MatrixXf& x, const SequenceBatch& batch,
               RecurrentScratch& scratch, Eigen::MatrixXf* y,
               Eigen::MatrixXf* last) const;

  // Floating-point operations of one Forward over `tokens` tokens.
  double Flops(int64_t tokens) const;

 private:
  // Tokens per input-projection GEMM in RunDirection (see there).
  static constexpr int kChunkColumns = 64;
  struct Layer {
    int input_size = 0;
    PackedMatrix w_ih[2];     // [G*H x input], packed once at load
    Eigen::VectorXf b_in;     // [D*G*H]: b_ih (+ b_hh for LSTM)
    PackedMatrix w_hh[2];     // [G*H x H], packed once at load
    Eigen::VectorXf b_hh[2];  // [G*H] (GRU only: it sits inside r * (...))
  };

  RecurrentModule(const RecurrentConfig& config, bool lstm,
                  const KernelTable& kernels)
      : config_(config), lstm_(lstm), gates_(lstm ? 4 : 3), kernels_(kernels) {}
  absl::Status LoadLayer(const SafeTensors& weights, int k);
  // Writes rows [row0 + d*H, row0 + (d+1)*H) of `out`.
  void RunDirection(const Layer& layer, int d, const Eigen::MatrixXf& in,
                    const SequenceBatch& batch, RecurrentScratch::Direction& s,
                    int row0, Eigen::MatrixXf& out) const;
  // Step t of direction d for the b sentences still running: the state
  // (s.h, s.c) from the gates, which hold W_ih x + b on entry (the first b
  // columns of `gates`, updated in place).
  void Step(const Layer& layer, int d, int t, int b,
            Eigen::Ref<Eigen::MatrixXf> gates,
            RecurrentScratch::Direction& s) const;

  const RecurrentConfig config_;
  const bool lstm_;
  const int gates_;
  const KernelTable& kernels_;
  std::vector<Layer> layers_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_RECURRENT_MODULE_H_
