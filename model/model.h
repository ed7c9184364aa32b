// A loaded model: tokenizer, word vectors and pooling, served as one unit.
#ifndef CTXEMBED_MODEL_MODEL_H_
#define CTXEMBED_MODEL_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "model/model_config.h"
#include "model/pooling.h"
#include "model/tokenizer.h"
#include "model/word_vectors.h"

namespace ctxembed {

// Immutable after Load/Create and thread-safe: share one instance
// (std::shared_ptr<const Model>) between all threads.
class Model {
 public:
  // Loads DIR/config.json and the files it names. On error returns a status
  // whose message names the file and the problem (NOT_FOUND for a missing
  // file, INVALID_ARGUMENT / DATA_LOSS for bad contents).
  static absl::StatusOr<std::shared_ptr<const Model>> Load(
      const std::string& model_dir);
  // Builds a model from parts; `vectors` must not be null.
  static absl::StatusOr<std::shared_ptr<const Model>> Create(
      ModelConfig config, std::unique_ptr<const WordVectors> vectors);

  const std::string& name() const { return config_.name; }
  int dim() const { return vectors_->dim(); }
  int max_tokens() const { return config_.max_tokens; }
  Pooling pooling() const { return config_.pooling; }
  // "bag_of_vectors" for a model with no encoder modules.
  absl::string_view architecture() const { return "bag_of_vectors"; }
  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  const WordVectors& word_vectors() const { return *vectors_; }

  // Writes one column per token to *out (dim x tokens.size()).
  void EmbedTokens(absl::Span<const std::string> tokens,
                   Eigen::MatrixXf* out) const;

 private:
  Model(ModelConfig config, Tokenizer tokenizer,
        std::unique_ptr<const WordVectors> vectors)
      : config_(std::move(config)),
        tokenizer_(std::move(tokenizer)),
        vectors_(std::move(vectors)) {}

  const ModelConfig config_;
  const Tokenizer tokenizer_;
  const std::unique_ptr<const WordVectors> vectors_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_MODEL_H_
