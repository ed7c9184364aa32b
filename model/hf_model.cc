#include "model/hf_model.h"

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/json_file.h"
#include "model/mapped_file.h"
#include "model/safetensors.h"
#include "model/status_macros.h"

namespace ctxembed {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// The JSON object in DIR/NAME, or null Json if the file does not exist.
absl::StatusOr<Json> ReadOptionalJson(const std::string& dir,
                                      const std::string& name) {
  const std::string path = absl::StrCat(dir, "/", name);
  std::error_code ec;
  if (!fs::exists(path, ec)) return Json();
  CTXEMBED_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  CTXEMBED_ASSIGN_OR_RETURN(Json json, ParseJsonStrict(text, path));
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected a JSON object"));
  }
  return json;
}

absl::Status KeyError(absl::string_view file, absl::string_view key,
                      absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(file, ": key \"", key, "\": ", what));
}

// A positive integer key; `fallback` when absent (0: required).
absl::StatusOr<int> ReadInt(const Json& j, absl::string_view file,
                            const std::string& key, int fallback = 0) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback > 0) return fallback;
    return KeyError(file, key, "missing");
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 ||
      it->get<int64_t>() > (1 << 24)) {
    return KeyError(file, key, "expected a positive integer");
  }
  return static_cast<int>(it->get<int64_t>());
}

// A boolean key; `fallback` when absent or null.
absl::StatusOr<std::optional<bool>> ReadBool(const Json& j,
                                             absl::string_view file,
                                             const std::string& key,
                                             std::optional<bool> fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return KeyError(file, key, "expected true or false");
  return std::optional<bool>(it->get<bool>());
}

absl::StatusOr<std::string> ReadString(const Json& j, absl::string_view file,
                                       const std::string& key,
                                       const std::string& fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  // tokenizer_config.json may hold special tokens as AddedToken objects.
  if (it->is_object() && it->contains("content") &&
      (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  if (!it->is_string()) return KeyError(file, key, "expected a string");
  return it->get<std::string>();
}

std::string NameFromDir(const std::string& model_dir) {
  fs::path path = fs::path(model_dir).lexically_normal();
  if (path.filename().empty()) path = path.parent_path();
  std::string name = path.filename().string();
  if (!name.empty() &&
      std::all_of(name.begin(), name.end(), absl::ascii_isdigit) &&
      path.has_parent_path()) {
    const std::string parent = path.parent_path().filename().string();
    if (!parent.empty()) name = parent;
  }
  return name.empty() ? "model" : name;
}

absl::StatusOr<BertConfig> ReadBertConfig(const Json& j,
                                          const std::string& file) {
  const std::string type = j.value("model_type", "");
  if (type != "bert") {
    return KeyError(
        file, "model_type",
        absl::StrCat("\"", type, "\" is not supported; supported: bert"));
  }
  BertConfig c;
  CTXEMBED_ASSIGN_OR_RETURN(c.vocab_size, ReadInt(j, file, "vocab_size"));
  CTXEMBED_ASSIGN_OR_RETURN(c.hidden_size, ReadInt(j, file, "hidden_size"));
  CTXEMBED_ASSIGN_OR_RETURN(c.num_hidden_layers,
                            ReadInt(j, file, "num_hidden_layers"));
  CTXEMBED_ASSIGN_OR_RETURN(c.num_attention_heads,
                            ReadInt(j, file, "num_attention_heads"));
  CTXEMBED_ASSIGN_OR_RETURN(c.intermediate_size,
                            ReadInt(j, file, "intermediate_size"));
  CTXEMBED_ASSIGN_OR_RETURN(c.max_position_embeddings,
                            ReadInt(j, file, "max_position_embeddings", 512));
  CTXEMBED_ASSIGN_OR_RETURN(c.type_vocab_size,
                            ReadInt(j, file, "type_vocab_size", 2));
  if (auto it = j.find("layer_norm_eps"); it != j.end()) {
    if (!it->is_number() || it->get<double>() <= 0) {
      return KeyError(file, "layer_norm_eps", "expected a positive number");
    }
    c.layer_norm_eps = it->get<double>();
  }
  const std::string act = j.value("hidden_act", "gelu");
  if (act != "gelu") {
    return KeyError(
        file, "hidden_act",
        absl::StrCat("\"", act, "\" is not supported; supported: gelu (erf)"));
  }
  const std::string position = j.value("position_embedding_type", "absolute");
  if (position != "absolute") {
    return KeyError(file, "position_embedding_type",
                    absl::StrCat("\"", position,
                                 "\" is not supported; supported: absolute"));
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    return KeyError(
        file, "num_attention_heads",
        absl::StrCat(c.num_attention_heads, " does not divide hidden_size ",
                     c.hidden_size));
  }
  return c;
}

// The tokenizer's settings: tokenizer.json's BertNormalizer when there is
// one (what the fast tokenizer runs), else tokenizer_config.json's.
absl::StatusOr<BertTokenizerOptions> ReadTokenizerOptions(
    const std::string& dir, int* model_max_length) {
  BertTokenizerOptions o;
  const std::string config_file = dir + "/tokenizer_config.json";
  CTXEMBED_ASSIGN_OR_RETURN(Json tc,
                            ReadOptionalJson(dir, "tokenizer_config.json"));
  if (!tc.is_null()) {
    CTXEMBED_ASSIGN_OR_RETURN(auto lower,
                              ReadBool(tc, config_file, "do_lower_case", true));
    o.lowercase = *lower;
    CTXEMBED_ASSIGN_OR_RETURN(
        o.strip_accents,
        ReadBool(tc, config_file, "strip_accents", std::nullopt));
    CTXEMBED_ASSIGN_OR_RETURN(
        auto chinese,
        ReadBool(tc, config_file, "tokenize_chinese_chars", true));
    o.handle_chinese_chars = *chinese;
    CTXEMBED_ASSIGN_OR_RETURN(
        o.unk_token, ReadString(tc, config_file, "unk_token", "[UNK]"));
    CTXEMBED_ASSIGN_OR_RETURN(
        o.cls_token, ReadString(tc, config_file, "cls_token", "[CLS]"));
    CTXEMBED_ASSIGN_OR_RETURN(
        o.sep_token, ReadString(tc, config_file, "sep_token", "[SEP]"));
    if (auto it = tc.find("model_max_length");
        it != tc.end() && it->is_number_integer() && it->get<int64_t>() > 0 &&
        it->get<int64_t>() < (1 << 24)) {
      *model_max_length = static_cast<int>(it->get<int64_t>());
    }
  }
  const std::string tokenizer_file = dir + "/tokenizer.json";
  CTXEMBED_ASSIGN_OR_RETURN(Json tj, ReadOptionalJson(dir, "tokenizer.json"));
  if (!tj.is_null()) {
    auto norm = tj.find("normalizer");
    if (norm != tj.end() && norm->is_object()) {
      const std::string type = norm->value("type", "");
      if (type != "BertNormalizer") {
        return KeyError(tokenizer_file, "normalizer",
                        absl::StrCat("type \"", type,
                                     "\" is not supported; supported: "
                                     "BertNormalizer"));
      }
      CTXEMBED_ASSIGN_OR_RETURN(
          auto clean, ReadBool(*norm, tokenizer_file, "clean_text", true));
      o.clean_text = *clean;
      CTXEMBED_ASSIGN_OR_RETURN(
          auto chinese,
          ReadBool(*norm, tokenizer_file, "handle_chinese_chars", true));
      o.handle_chinese_chars = *chinese;
      CTXEMBED_ASSIGN_OR_RETURN(
          o.strip_accents,
          ReadBool(*norm, tokenizer_file, "strip_accents", std::nullopt));
      CTXEMBED_ASSIGN_OR_RETURN(
          auto lower, ReadBool(*norm, tokenizer_file, "lowercase", true));
      o.lowercase = *lower;
    }
    auto model = tj.find("model");
    if (model != tj.end() && model->is_object()) {
      const std::string type = model->value("type", "WordPiece");
      if (type != "WordPiece") {
        return KeyError(tokenizer_file, "model",
                        absl::StrCat("type \"", type,
                                     "\" is not supported; supported: "
                                     "WordPiece"));
      }
      CTXEMBED_ASSIGN_OR_RETURN(
          o.unk_token,
          ReadString(*model, tokenizer_file, "unk_token", o.unk_token));
      CTXEMBED_ASSIGN_OR_RETURN(
          o.continuing_subword_prefix,
          ReadString(*model, tokenizer_file, "continuing_subword_prefix",
                     o.continuing_subword_prefix));
      CTXEMBED_ASSIGN_OR_RETURN(
          o.max_input_chars_per_word,
          ReadInt(*model, tokenizer_file, "max_input_chars_per_word",
                  o.max_input_chars_per_word));
    }
  }
  return o;
}

// Pooling and normalization from modules.json and its module directories;
// without modules.json (a plain save_pretrained directory), mean pooling as
// sentence-transformers does for such a model.
absl::Status ReadModules(const std::string& dir, TowerConfig* tower) {
  tower->pooling = Pooling::kMean;
  tower->normalize = false;
  const std::string modules_file = dir + "/modules.json";
  std::error_code ec;
  if (!fs::exists(modules_file, ec)) return absl::OkStatus();
  CTXEMBED_ASSIGN_OR_RETURN(std::string text, ReadFileToString(modules_file));
  CTXEMBED_ASSIGN_OR_RETURN(Json modules, ParseJsonStrict(text, modules_file));
  if (!modules.is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(modules_file, ": expected a JSON array of modules"));
  }
  bool transformer = false;
  for (const Json& m : modules) {
    if (!m.is_object() || !m.contains("type") || !m["type"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(modules_file, ": each module needs a \"type\""));
    }
    const std::string type = m["type"].get<std::string>();
    const std::string path = m.value("path", "");
    if (absl::EndsWith(type, ".Transformer")) {
      if (!path.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(modules_file, ": the Transformer module in \"", path,
                         "\" is not supported; it must be the directory itself "
                         "(path \"\")"));
      }
      transformer = true;
    } else if (absl::EndsWith(type, ".Pooling")) {
      const std::string file = absl::StrCat(dir, "/", path, "/config.json");
      CTXEMBED_ASSIGN_OR_RETURN(Json p,
                                ReadOptionalJson(dir, path + "/config.json"));
      if (p.is_null()) {
        return absl::NotFoundError(absl::StrCat(file, ": missing"));
      }
      std::vector<Pooling> modes;
      const std::pair<const char*, std::optional<Pooling>> keys[] = {
          {"pooling_mode_cls_token", Pooling::kCls},
          {"pooling_mode_mean_tokens", Pooling::kMean},
          {"pooling_mode_max_tokens", Pooling::kMax},
          {"pooling_mode_mean_sqrt_len_tokens", Pooling::kMeanSqrtLen},
          {"pooling_mode_weightedmean_tokens", std::nullopt},
          {"pooling_mode_lasttoken", std::nullopt},
      };
      for (const auto& [key, pooling] : keys) {
        CTXEMBED_ASSIGN_OR_RETURN(auto on, ReadBool(p, file, key, false));
        if (!*on) continue;
        if (!pooling) return KeyError(file, key, "is not supported");
        modes.push_back(*pooling);
      }
      if (modes.size() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            file, ": exactly one pooling mode must be true (got ", modes.size(),
            "); concatenated poolings are not supported"));
      }
      CTXEMBED_ASSIGN_OR_RETURN(auto prompt,
                                ReadBool(p, file, "include_prompt", true));
      if (!*prompt) {
        return KeyError(file, "include_prompt", "false is not supported");
      }
      tower->pooling = modes[0];
    } else if (absl::EndsWith(type, ".Normalize")) {
      tower->normalize = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(modules_file, ": module type \"", type,
                       "\" is not supported; supported: Transformer, "
                       "Pooling, Normalize"));
    }
  }
  if (!transformer) {
    return absl::InvalidArgumentError(
        absl::StrCat(modules_file, ": no Transformer module"));
  }
  return absl::OkStatus();
}

// ctxembed.json beside the Hugging Face files: serving options the
// directory's own files cannot say. Keys: "precision" ("fp32", "bf16" or
// "int8").
absl::Status ReadServingOptions(const std::string& dir, ModelConfig* config,
                                BertConfig* bert) {
  const std::string file = dir + "/" + kServingOptionsFile;
  CTXEMBED_ASSIGN_OR_RETURN(Json j, ReadOptionalJson(dir, kServingOptionsFile));
  if (j.is_null()) return absl::OkStatus();
  for (const auto& [key, value] : j.items()) {
    if (key != "precision") {
      return KeyError(file, key, "unknown (the keys are: precision)");
    }
  }
  CTXEMBED_ASSIGN_OR_RETURN(
      std::string name,
      ReadString(j, file, "precision",
                 std::string(PrecisionName(Precision::kFp32))));
  const std::optional<Precision> precision = PrecisionFromName(name);
  if (!precision) {
    return KeyError(file, "precision",
                    "expected \"fp32\", \"bf16\" or \"int8\"");
  }
  bert->precision = *precision;
  config->precision = bert->precision;
  return absl::OkStatus();
}

}  // namespace

bool IsHuggingFaceConfig(absl::string_view config_json) {
  Json j = Json::parse(config_json.begin(), config_json.end(), nullptr,
                       /*allow_exceptions=*/false);
  return j.is_object() && j.contains("model_type") &&
         !j.contains("ctxembed_format");
}

absl::StatusOr<HuggingFaceModel> ReadHuggingFaceModel(
    const std::string& model_dir, absl::string_view config_json) {
  const std::string config_file = model_dir + "/config.json";
  CTXEMBED_ASSIGN_OR_RETURN(Json j, ParseJsonStrict(config_json, config_file));
  CTXEMBED_ASSIGN_OR_RETURN(BertConfig bert, ReadBertConfig(j, config_file));

  HuggingFaceModel hf;
  ModelConfig& config = hf.config;
  config.name = NameFromDir(model_dir);
  config.weights = "model.safetensors";
  const std::string weights_path = model_dir + "/model.safetensors";
  std::error_code ec;
  if (!fs::exists(weights_path, ec)) {
    return absl::NotFoundError(absl::StrCat(
        weights_path,
        ": missing (only safetensors weights are read; save the model with "
        "safe_serialization=True)"));
  }
  CTXEMBED_ASSIGN_OR_RETURN(hf.weights, SafeTensors::Open(weights_path));
  const SafeTensors* weights = hf.weights.get();
  const char* kWords = "embeddings.word_embeddings.weight";
  if (!weights->Has(kWords)) {
    if (!weights->Has(absl::StrCat("bert.", kWords))) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": no tensor ", kWords, " (nor bert.",
                       kWords, "): not a BertModel's weights"));
    }
    bert.prefix = "bert.";
  }

  int model_max_length = 0;
  CTXEMBED_ASSIGN_OR_RETURN(BertTokenizerOptions tokenizer_options,
                            ReadTokenizerOptions(model_dir, &model_max_length));
  const std::string vocab = model_dir + "/vocab.txt";
  CTXEMBED_ASSIGN_OR_RETURN(hf.tokenizer,
                            BertTokenizer::Create(vocab, tokenizer_options));

  // Longest input: sentence-transformers' max_seq_length, else the
  // tokenizer's model_max_length, never past the position table.
  int max_tokens =
      model_max_length > 0 ? model_max_length : bert.max_position_embeddings;
  const std::string st_file = model_dir + "/sentence_bert_config.json";
  CTXEMBED_ASSIGN_OR_RETURN(
      Json st, ReadOptionalJson(model_dir, "sentence_bert_config.json"));
  if (!st.is_null() && st.contains("max_seq_length")) {
    CTXEMBED_ASSIGN_OR_RETURN(max_tokens,
                              ReadInt(st, st_file, "max_seq_length"));
  }
  if (!st.is_null()) {
    CTXEMBED_ASSIGN_OR_RETURN(auto lower,
                              ReadBool(st, st_file, "do_lower_case", false));
    if (*lower && !tokenizer_options.lowercase) {
      return KeyError(st_file, "do_lower_case",
                      "true over a cased tokenizer is not supported");
    }
  }
  config.max_tokens =
      std::max(2, std::min(max_tokens, bert.max_position_embeddings));

  TowerConfig tower;
  tower.embedding.kind = EmbeddingKind::kTable;
  tower.embedding.tensor = bert.prefix + kWords;
  tower.embedding.vocab = "vocab.txt";
  tower.embedding.unk_token = tokenizer_options.unk_token;
  CTXEMBED_RETURN_IF_ERROR(ReadModules(model_dir, &tower));
  CTXEMBED_RETURN_IF_ERROR(ReadServingOptions(model_dir, &config, &bert));
  tower.transformer = bert;
  config.towers.emplace_back("enc0", std::move(tower));
  return hf;
}

}  // namespace ctxembed
