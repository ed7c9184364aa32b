// One encoder: word vectors -> recurrent modules -> pooling -> projection.
// A single-encoder model has one tower; an Object2Vec-style dual encoder two.
#ifndef CTXEMBED_MODEL_TOWER_H_
#define CTXEMBED_MODEL_TOWER_H_

#include <Eigen/Core>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/bert_encoder.h"
#include "model/linear.h"
#include "model/model_config.h"
#include "model/recurrent_module.h"
#include "model/safetensors.h"
#include "model/sequence_batch.h"
#include "model/sif_weights.h"
#include "model/word_vectors.h"

namespace ctxembed {

// A tokenized sentence.
using TokenList = std::vector<std::string>;

// Per-thread buffers for Tower calls; reused across calls, so a warm thread
// allocates nothing per token. Thread-compatible.
struct TowerScratch {
  std::vector<int> lengths;
  SequenceBatch batch;
  Eigen::MatrixXf buffers[2];  // activations between modules
  Eigen::MatrixXf last;        // h_n of the top module, for "last" pooling
  Eigen::MatrixXf pooled;
  RecurrentScratch recurrent;
  BertScratch bert;
};

// Immutable after Create; thread-safe (scratch is the caller's).
class Tower {
 public:
  // Builds the tower from its config. `weights` may be null when the tower
  // needs no tensors; file names resolve against `model_dir`. Errors name
  // the module, tensor or file, and the sizes that disagree.
  static absl::StatusOr<std::unique_ptr<Tower>> Create(
      const std::string& name, const TowerConfig& config,
      const SafeTensors* weights, const std::string& model_dir);

  // A bag-of-vectors tower over vectors loaded by the caller.
  static absl::StatusOr<std::unique_ptr<Tower>> FromVectors(
      const std::string& name, const TowerConfig& config,
      std::unique_ptr<const WordVectors> vectors);

  const std::string& name() const { return name_; }
  // Length of each token vector (the top module's output).
  int token_dim() const { return token_dim_; }
  // Length of each sentence vector (after projection).
  int output_dim() const { return output_dim_; }
  Pooling pooling() const { return config_.pooling; }
  // True if Embed accepts Pooling::kSif: the config has a "sif" key, or the
  // word vectors record counts.
  bool supports_sif() const { return sif_ != nullptr; }
  // Pooling kLast: the top recurrent module's final states, which have the
  // token vectors' size unless that module concatenates its input.
  bool supports_last() const {
    return !modules_.empty() && !modules_.back()->config().concat_input;
  }
  // "bag_of_vectors", the modules, e.g. "bilstm+lstm", or "bert-L6-H384".
  const std::string& architecture() const { return architecture_; }
  const WordVectors& word_vectors() const { return *vectors_; }
  const std::vector<std::unique_ptr<RecurrentModule>>& modules() const {
    return modules_;
  }
  // Null unless the tower is a transformer.
  const BertEncoder* transformer() const { return transformer_.get(); }

  // Token vectors of a batch: returns a [token_dim x total tokens] matrix
  // held in `s` (valid until its next use), sentence after sentence, laid
  // out as s.batch describes.
  const Eigen::MatrixXf& EncodeTokens(absl::Span<const TokenList> sentences,
                                      TowerScratch& s) const;

  // One vector per sentence into *out ([output_dim x sentences]): `pooling`
  // (the tower's own, or a request's), then the projection and the
  // normalisation the config asks for. An empty sentence pools to zeros.
  // kLast needs supports_last() (callers check it first), kSif
  // supports_sif().
  void Embed(absl::Span<const TokenList> sentences, Pooling pooling,
             TowerScratch& s, Eigen::MatrixXf* out) const;

 private:
  Tower() = default;
  const Eigen::MatrixXf& Encode(absl::Span<const TokenList> sentences,
                                bool want_last, TowerScratch& s) const;
  absl::Status CreateSif(const std::string& model_dir);

  std::string name_;
  TowerConfig config_;
  std::unique_ptr<const WordVectors> vectors_;
  std::vector<std::unique_ptr<RecurrentModule>> modules_;
  std::unique_ptr<BertEncoder> transformer_;
  std::unique_ptr<SifWeights> sif_;  // null: no sif pooling
  std::optional<Linear> projection_;
  int token_dim_ = 0;
  int output_dim_ = 0;
  std::string architecture_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_TOWER_H_
