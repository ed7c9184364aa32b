// The model directory's config.json, parsed and validated.
#ifndef CTXEMBED_MODEL_MODEL_CONFIG_H_
#define CTXEMBED_MODEL_MODEL_CONFIG_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/bert_encoder.h"
#include "model/pooling.h"
#include "model/recurrent_module.h"
#include "model/tokenizer.h"

namespace ctxembed {

// The word-vector layer's kind ("kind" of key "embedding").
enum class EmbeddingKind {
  kFastText,  // "fasttext": a fastText .bin, .vec or word2vec binary file
  kTable,     // "table": a learned matrix in the weights file + a vocabulary
};

// An activation after a linear layer ("activation": "none", "relu", "tanh",
// "sigmoid").
enum class Activation { kNone, kRelu, kTanh, kSigmoid };

// What a comparator's last layer gives ("output" of key "comparator"):
// the value, its sigmoid (both of a width-1 layer), or the softmax
// probability of class `score_class`.
enum class ComparatorOutput { kIdentity, kSigmoid, kSoftmax };

// The config.json spelling of each value (for messages and ListModels).
absl::string_view EmbeddingKindName(EmbeddingKind kind);
absl::string_view ActivationName(Activation activation);
absl::string_view PrecisionName(Precision precision);
// "fp32", "bf16" or "int8"; nullopt for any other name.
std::optional<Precision> PrecisionFromName(absl::string_view name);
absl::string_view ComparatorOutputName(ComparatorOutput output);

// The word-vector layer (key "embedding").
struct EmbeddingConfig {
  EmbeddingKind kind = EmbeddingKind::kFastText;
  std::string file;       // fasttext: path relative to the model directory
  std::string tensor;     // table: [vocab x dim] tensor name
  std::string vocab;      // table: one token per line, line i = row i
  std::string unk_token;  // table: row for unknown tokens ("" = zero vector)
};

// A PyTorch nn.Linear: "{prefix}.weight" [out x in], optional "{prefix}.bias".
struct LinearConfig {
  std::string prefix;
  Activation activation = Activation::kNone;  // applied after the layer
};

// SIF weighting for "sif" pooling (key "sif" of a tower).
struct SifConfig {
  // Smoothing: a token's weight is a / (a + p(word)), p its relative
  // frequency in the training text.
  double a = 1e-3;
  // A file of "word count" lines, relative to the model directory; "" reads
  // the counts a fastText .bin records.
  std::string counts;
  // A safetensors file with a tensor "components" [k x token size] of unit
  // rows; their projections are removed from the pooled vector. "" = none.
  std::string components;
};

// One encoder: word vectors, recurrent modules, pooling, projection.
struct TowerConfig {
  EmbeddingConfig embedding;
  std::vector<RecurrentConfig> encoder;  // empty: a bag of word vectors
  // A BERT-family transformer over the embedding (word pieces): set only
  // for Hugging Face model directories (model/hf_model.h), never by
  // config.json; exclusive with `encoder`.
  std::optional<BertConfig> transformer;
  // Default: "fasttext" for a bag of vectors, "mean" with an encoder.
  Pooling pooling = Pooling::kFastText;
  // Parameters of "sif" pooling; without the key, requests may still ask
  // for it on word vectors that record counts (defaults above).
  std::optional<SifConfig> sif;
  std::optional<LinearConfig> projection;  // on the pooled vector
  bool normalize = false;                  // L2-normalise the final vector
};

// Object2Vec's comparator: an MLP over [u, v, |u - v|, u * v].
struct ComparatorConfig {
  std::vector<LinearConfig> layers;
  ComparatorOutput output = ComparatorOutput::kIdentity;
  int score_class = 1;
};

// Everything config.json says; see model/README.md for the format.
struct ModelConfig {
  int format_version = 1;  // "ctxembed_format"
  std::string name;
  // Longest input accepted (in tokens) unless a request asks to truncate.
  int max_tokens = 256;
  Tokenizer::Options tokenizer;
  // Tensors (safetensors), relative to the model directory.
  std::string weights = "model.safetensors";
  // One tower named "enc0" for a single encoder; "enc0" and "enc1" for a
  // dual encoder (key "towers").
  std::vector<std::pair<std::string, TowerConfig>> towers;
  std::optional<ComparatorConfig> comparator;
  // "precision": "fp32" (default), "bf16" or "int8": how the encoder's
  // weight matrices are stored and multiplied (see Precision); also set in
  // every tower's RecurrentConfig (and, for a Hugging Face directory, from
  // its ctxembed.json, in its BertConfig).
  Precision precision = Precision::kFp32;
  // "matryoshka_dimensions": the shorter lengths the model was trained to
  // keep meaning when its vectors are cut to them (Matryoshka
  // representation learning), ascending; clients may ask for those
  // (OpenAI's "dimensions"). Empty: vectors are served whole only.
  std::vector<int> matryoshka_dimensions;

  // True if any part reads tensors from `weights`.
  bool NeedsWeights() const;
};

// Parses config.json text. On error returns INVALID_ARGUMENT whose message
// starts with `file_name` and names the key (or the byte, for JSON syntax
// errors) and what was expected. Unknown keys are errors: a typo must not
// silently fall back to a default.
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text,
                                             absl::string_view file_name);

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_MODEL_CONFIG_H_
