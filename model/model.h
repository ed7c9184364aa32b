// A loaded model: tokenizer, one or two encoder towers, and for dual
// encoders an optional comparator, served as one unit.
#ifndef CTXEMBED_MODEL_MODEL_H_
#define CTXEMBED_MODEL_MODEL_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/comparator.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "model/tower.h"
#include "model/word_vectors.h"

namespace ctxembed {

// Immutable after Load/Create and thread-safe: share one instance
// (std::shared_ptr<const Model>) between all threads; per-call buffers are
// the caller's (TowerScratch).
class Model {
 public:
  // Loads DIR/config.json and the files it names (word vectors, the
  // safetensors weights, vocabularies). On error returns a status whose
  // message names the file, module or tensor and the problem (NOT_FOUND for
  // a missing file, INVALID_ARGUMENT / DATA_LOSS for bad contents).
  static absl::StatusOr<std::shared_ptr<const Model>> Load(
      const std::string& model_dir);
  // A bag-of-vectors model over `vectors` (must not be null).
  static absl::StatusOr<std::shared_ptr<const Model>> FromWordVectors(
      const std::string& name, std::unique_ptr<const WordVectors> vectors,
      Pooling pooling = Pooling::kFastText);

  const std::string& name() const { return config_.name; }
  int max_tokens() const { return config_.max_tokens; }
  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }

  int num_towers() const { return static_cast<int>(towers_.size()); }
  const Tower& tower(int i) const { return *towers_[i]; }
  // The tower called `name`; "" is the first. INVALID_ARGUMENT listing the
  // towers otherwise.
  absl::StatusOr<const Tower*> FindTower(absl::string_view name) const;
  // Null unless a dual encoder has one.
  const Comparator* comparator() const {
    return comparator_ ? &*comparator_ : nullptr;
  }

  // Of the first tower (the one an unnamed request uses).
  int dim() const { return towers_[0]->output_dim(); }
  int token_dim() const { return towers_[0]->token_dim(); }
  Pooling pooling() const { return towers_[0]->pooling(); }
  const WordVectors& word_vectors() const { return towers_[0]->word_vectors(); }
  // The first tower's architecture, or "dual(a,b)" for two towers.
  const std::string& architecture() const { return architecture_; }

 private:
  Model(ModelConfig config, Tokenizer tokenizer)
      : config_(std::move(config)), tokenizer_(std::move(tokenizer)) {}
  absl::Status Finish(const SafeTensors* weights);

  const ModelConfig config_;
  const Tokenizer tokenizer_;
  std::vector<std::unique_ptr<Tower>> towers_;
  std::optional<Comparator> comparator_;
  std::string architecture_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_MODEL_H_
