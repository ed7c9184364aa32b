#include "model/model.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/hf_model.h"
#include "model/mapped_file.h"
#include "model/safetensors.h"
#include "model/status_macros.h"

namespace ctxembed {

absl::StatusOr<std::shared_ptr<const Model>> Model::Load(
    const std::string& model_dir) {
  const std::string config_path = absl::StrCat(model_dir, "/config.json");
  CTXEMBED_ASSIGN_OR_RETURN(std::string text, ReadFileToString(config_path));
  ModelConfig config;
  std::optional<Tokenizer> tokenizer;
  std::unique_ptr<SafeTensors> weights;
  if (IsHuggingFaceConfig(text)) {
    CTXEMBED_ASSIGN_OR_RETURN(HuggingFaceModel hf,
                              ReadHuggingFaceModel(model_dir, text));
    config = std::move(hf.config);
    tokenizer = Tokenizer::WordPiece(std::move(hf.tokenizer));
    weights = std::move(hf.weights);
  } else {
    CTXEMBED_ASSIGN_OR_RETURN(config, ParseModelConfig(text, config_path));
    CTXEMBED_ASSIGN_OR_RETURN(tokenizer, Tokenizer::Create(config.tokenizer));
  }
  if (weights == nullptr && config.NeedsWeights()) {
    const std::string& w = config.weights;
    CTXEMBED_ASSIGN_OR_RETURN(
        weights, SafeTensors::Open(w[0] == '/' ? w : model_dir + "/" + w));
  }
  std::shared_ptr<Model> model(new Model(std::move(config), *tokenizer));
  for (const auto& [name, tower_config] : model->config_.towers) {
    CTXEMBED_ASSIGN_OR_RETURN(
        auto tower,
        Tower::Create(name, tower_config, weights.get(), model_dir));
    model->towers_.push_back(std::move(tower));
  }
  CTXEMBED_RETURN_IF_ERROR(model->Finish(weights.get()));
  // The weights file is unmapped here: every tensor was copied at load.
  return std::shared_ptr<const Model>(std::move(model));
}

absl::StatusOr<std::shared_ptr<const Model>> Model::FromWordVectors(
    const std::string& name, std::unique_ptr<const WordVectors> vectors,
    Pooling pooling) {
  if (vectors == nullptr) {
    return absl::InvalidArgumentError("Model::FromWordVectors: no vectors");
  }
  ModelConfig config;
  config.name = name;
  TowerConfig tower_config;
  tower_config.pooling = pooling;
  config.towers.emplace_back("enc0", tower_config);
  CTXEMBED_ASSIGN_OR_RETURN(Tokenizer tokenizer,
                            Tokenizer::Create(config.tokenizer));
  std::shared_ptr<Model> model(new Model(std::move(config), tokenizer));
  // A bag tower over caller-provided vectors: build it from a config whose
  // embedding is already loaded.
  CTXEMBED_ASSIGN_OR_RETURN(
      auto tower, Tower::FromVectors("enc0", tower_config, std::move(vectors)));
  model->towers_.push_back(std::move(tower));
  CTXEMBED_RETURN_IF_ERROR(model->Finish(nullptr));
  return std::shared_ptr<const Model>(std::move(model));
}

absl::Status Model::Finish(const SafeTensors* weights) {
  if (towers_.size() == 2) {
    if (towers_[0]->output_dim() != towers_[1]->output_dim()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "towers enc0 and enc1 give vectors of size ",
          towers_[0]->output_dim(), " and ", towers_[1]->output_dim(),
          "; a dual encoder needs one size"));
    }
    architecture_ = absl::StrCat("dual(", towers_[0]->architecture(), ",",
                                 towers_[1]->architecture(), ")");
  } else {
    architecture_ = towers_[0]->architecture();
  }
  for (int d : config_.matryoshka_dimensions) {
    if (d >= dim()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: key \"matryoshka_dimensions\": ", d,
          " is not shorter than the model's vectors (", dim(), ")"));
    }
  }
  if (config_.comparator) {
    CTXEMBED_ASSIGN_OR_RETURN(
        Comparator c, Comparator::Create(*config_.comparator, dim(), *weights));
    comparator_ = std::move(c);
  }
  return absl::OkStatus();
}

absl::StatusOr<const Tower*> Model::FindTower(absl::string_view name) const {
  if (name.empty()) return towers_[0].get();
  for (const auto& t : towers_) {
    if (t->name() == name) return t.get();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "model \"", this->name(), "\" has no tower \"", name, "\"; towers: ",
      absl::StrJoin(towers_, ", ", [](std::string* out, const auto& t) {
        out->append(t->name());
      })));
}

}  // namespace ctxembed
