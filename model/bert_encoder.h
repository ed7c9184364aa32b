// The encoder of a BERT-family transformer (Hugging Face BertModel, as
// sentence-transformers saves MiniLM, BGE, E5, GTE): embeddings (word +
// absolute position + token type 0, LayerNorm), then post-LayerNorm blocks
// of multi-head self-attention and a GELU (erf) feed-forward layer.
//
// Sentences are packed, not padded: the matrix holds the tokens of every
// sentence one after the other (model/sequence_batch.h), the dense layers
// run over all of them at once on the packed-GEMM kernels, and attention
// runs within each sentence, so padding is never computed and cannot change
// a vector.
#ifndef CTXEMBED_MODEL_BERT_ENCODER_H_
#define CTXEMBED_MODEL_BERT_ENCODER_H_

#include <Eigen/Core>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/packed_matrix.h"
#include "model/safetensors.h"
#include "model/sequence_batch.h"

namespace ctxembed {

// The shape of the model (Hugging Face config.json keys).
struct BertConfig {
  int vocab_size = 0;
  int hidden_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int intermediate_size = 0;
  int max_position_embeddings = 0;
  int type_vocab_size = 0;
  double layer_norm_eps = 1e-12;
  // Tensor name prefix: "" or "bert." (the prefix of BertFor* models).
  std::string prefix;
  // The dense layers' weights (ctxembed.json "precision"); attention,
  // LayerNorm and GELU stay fp32.
  Precision precision = Precision::kFp32;
};

// Per-thread buffers; they grow to the largest batch and are reused. Each
// step runs in two halves, the second on ParallelRunner's helper when it is
// free (model/parallel_runner.h); the halves' private buffers are [2].
struct BertScratch {
  // Only ever grown, used through their first columns (a batch's tokens):
  // resized per batch, the large ones (past glibc's mmap threshold) would
  // be mapped and faulted in anew each time.
  Eigen::MatrixXf qkv, context, sum, intermediate;
  // A head's [query x key] weights, and 1 / their sum per query; only
  // ever grown (sentences of a batch differ in length).
  std::vector<float> scores[2], inv_sums[2];
  Eigen::VectorXf rhs[2];
  std::vector<float> packed[2];  // a head's queries or values, packed
  // Zeros, as the bias of attention's GEMMs (their outputs then need no
  // clearing first); only ever grown.
  Eigen::VectorXf zeros;
};

// Immutable after Create; thread-safe (scratch is the caller's).
class BertEncoder {
 public:
  // Reads the embeddings' position and token-type tables and LayerNorm,
  // and every layer's tensors (Hugging Face names under config.prefix;
  // LayerNorm "weight"/"bias" or the older "gamma"/"beta"). Errors name the
  // tensor and the shapes that disagree.
  static absl::StatusOr<std::unique_ptr<BertEncoder>> Create(
      const BertConfig& config, const SafeTensors& weights);

  const BertConfig& config() const { return config_; }
  int hidden_size() const { return config_.hidden_size; }

  // x: the word embeddings of the batch's tokens ([hidden x total tokens],
  // laid out as `batch` says), replaced by the last layer's hidden states.
  // Sentences must be no longer than max_position_embeddings.
  void Forward(const SequenceBatch& batch, BertScratch& s,
               Eigen::MatrixXf* x) const;

  // Floating-point operations of one Forward over sentences of `lengths`.
  double Flops(const std::vector<int>& lengths) const;

 private:
  // A dense layer, W [out x in] and b. Two cores share it by rows (first
  // `split` rows, the rest) for few columns, by columns for many.
  struct Dense {
    PackedMatrix weight;
    int split = 0;  // 0: rows are not split (an empty matrix)
    int rows = 0;
    Eigen::VectorXf bias;
  };
  struct Norm {
    Eigen::VectorXf gamma, beta;
  };
  struct Layer {
    Dense qkv;  // query, key and value stacked: [3 hidden x hidden]
    Dense attention_out;
    Norm attention_norm;
    Dense intermediate;
    Dense output;
    Norm output_norm;
  };
  BertEncoder() = default;
  static Dense MakeDense(const Eigen::MatrixXf& w, Eigen::VectorXf bias,
                         Precision precision);
  // out = W in + b (out: [rows x in.cols()]); with `gelu`, then GELU on
  // every element.
  void Apply(const Dense& d, Eigen::Ref<const Eigen::MatrixXf> in, bool gelu,
             BertScratch& s, Eigen::Ref<Eigen::MatrixXf> out) const;
  // x = LayerNorm(x + residual); residual empty: LayerNorm(x).
  void AddNorm(const Norm& n, Eigen::Ref<const Eigen::MatrixXf> residual,
               Eigen::MatrixXf* x) const;
  void Attention(const SequenceBatch& batch, int first_head, int end_head,
                 int part, BertScratch& s) const;

  BertConfig config_;
  const KernelTable* kernels_ = nullptr;  // the dense layers' (packed for it)
  Eigen::MatrixXf position_;              // [hidden x max_position_embeddings]
  Eigen::VectorXf token_type_;            // row 0 of the token-type table
  Norm embedding_norm_;
  std::vector<Layer> layers_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_BERT_ENCODER_H_
