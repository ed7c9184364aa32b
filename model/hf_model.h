// Model directories as sentence-transformers (SentenceTransformer.save) and
// Hugging Face (save_pretrained) write them, served without a ctxembed
// config: a BERT-family transformer (config.json "model_type": "bert"),
// model.safetensors, vocab.txt and the tokenizer's settings, and when
// present modules.json, 1_Pooling/config.json and a Normalize module.
//
// Precedence: a config.json with "ctxembed_format" is ctxembed's own
// (model/model_config.h); one with "model_type" and no "ctxembed_format" is
// read as described here.
#ifndef CTXEMBED_MODEL_HF_MODEL_H_
#define CTXEMBED_MODEL_HF_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/bert_tokenizer.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace ctxembed {

// Optional, beside the Hugging Face files: ctxembed's serving options for
// the directory, {"precision": "bf16"} or "int8" (default "fp32"; see Precision
// in model/packed_matrix.h). Unknown keys are refused.
inline constexpr char kServingOptionsFile[] = "ctxembed.json";

// True if `config_json` (the text of DIR/config.json) is a Hugging Face
// model configuration rather than ctxembed's.
bool IsHuggingFaceConfig(absl::string_view config_json);

struct HuggingFaceModel {
  ModelConfig config;
  std::shared_ptr<const BertTokenizer> tokenizer;
  // model.safetensors, opened (and its header validated) while reading the
  // directory: the loader reads the tensors from it.
  std::unique_ptr<SafeTensors> weights;
};

// Reads the directory's files into a ctxembed model config and its
// tokenizer. The model is named after the directory (its parent's name for
// a numeric version directory, models/minilm/3 -> "minilm"). Errors name
// the file and the key: unsupported model types, activations, position
// embeddings or sentence-transformers modules (Dense, weighted-mean or
// last-token pooling) are refused, not approximated.
absl::StatusOr<HuggingFaceModel> ReadHuggingFaceModel(
    const std::string& model_dir, absl::string_view config_json);

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_HF_MODEL_H_
