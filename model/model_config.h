// The model directory's config.json, parsed and validated.
#ifndef CTXEMBED_MODEL_MODEL_CONFIG_H_
#define CTXEMBED_MODEL_MODEL_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/pooling.h"
#include "model/tokenizer.h"

namespace ctxembed {

// The word-vector layer (config key "embedding").
struct EmbeddingConfig {
  // "fasttext": a fastText .bin, .vec or word2vec binary file (by content).
  std::string kind;
  // Path of the vectors file, relative to the model directory.
  std::string file;
};

// Everything config.json says; see model/README.md for the format.
struct ModelConfig {
  int format_version = 1;  // "ctxembed_format"
  std::string name;
  // Longest input accepted (in tokens) unless a request asks to truncate.
  int max_tokens = 256;
  Tokenizer::Options tokenizer;
  EmbeddingConfig embedding;
  Pooling pooling = Pooling::kFastText;
};

// Parses config.json text. On error returns INVALID_ARGUMENT whose message
// starts with `file_name` and names the key (or the byte, for JSON syntax
// errors) and what was expected. Unknown keys are errors: a typo must not
// silently fall back to a default.
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text,
                                             absl::string_view file_name);

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_MODEL_CONFIG_H_
