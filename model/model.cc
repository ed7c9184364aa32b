#include "model/model.h"

#include "absl/strings/str_cat.h"
#include "model/mapped_file.h"
#include "model/status_macros.h"

namespace ctxembed {

absl::StatusOr<std::shared_ptr<const Model>> Model::Load(
    const std::string& model_dir) {
  const std::string config_path = absl::StrCat(model_dir, "/config.json");
  CTXEMBED_ASSIGN_OR_RETURN(std::string text, ReadFileToString(config_path));
  CTXEMBED_ASSIGN_OR_RETURN(ModelConfig config,
                            ParseModelConfig(text, config_path));
  const std::string& file = config.embedding.file;
  const std::string vectors_path =
      file[0] == '/' ? file : absl::StrCat(model_dir, "/", file);
  CTXEMBED_ASSIGN_OR_RETURN(auto vectors, LoadWordVectors(vectors_path));
  return Create(std::move(config), std::move(vectors));
}

absl::StatusOr<std::shared_ptr<const Model>> Model::Create(
    ModelConfig config, std::unique_ptr<const WordVectors> vectors) {
  if (vectors == nullptr) {
    return absl::InvalidArgumentError("Model::Create: no word vectors");
  }
  CTXEMBED_ASSIGN_OR_RETURN(Tokenizer tokenizer,
                            Tokenizer::Create(config.tokenizer));
  return std::shared_ptr<const Model>(
      new Model(std::move(config), std::move(tokenizer), std::move(vectors)));
}

void Model::EmbedTokens(absl::Span<const std::string> tokens,
                        Eigen::MatrixXf* out) const {
  out->resize(dim(), static_cast<Eigen::Index>(tokens.size()));
  for (size_t t = 0; t < tokens.size(); ++t) {
    vectors_->Lookup(tokens[t], out->col(static_cast<Eigen::Index>(t)).data());
  }
}

}  // namespace ctxembed
