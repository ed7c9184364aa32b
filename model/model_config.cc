#include "model/model_config.h"

#include <initializer_list>
#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/json_file.h"
#include "model/status_macros.h"

namespace ctxembed {
namespace {

using Json = nlohmann::json;

constexpr int kFormatVersion = 1;
constexpr int kMaxTokensLimit = 1 << 20;

// Reads keys of one JSON object, each error prefixed with the file and the
// key's dotted path. Thread-compatible; lives for one parse.
class ObjectReader {
 public:
  ObjectReader(const Json& object, std::string path, absl::string_view file)
      : object_(object), path_(std::move(path)), file_(file) {}

  absl::Status CheckIsObject() const {
    if (object_.is_object()) return absl::OkStatus();
    return Error(path_,
                 absl::StrCat("expected an object, got ", object_.type_name()));
  }

  // Fails on keys outside `known`.
  absl::Status CheckKeys(std::initializer_list<absl::string_view> known) const {
    for (const auto& item : object_.items()) {
      bool ok = false;
      for (absl::string_view k : known) ok = ok || item.key() == k;
      if (!ok) {
        return Error(Key(item.key()), absl::StrCat("unknown key; known keys: ",
                                                   absl::StrJoin(known, ", ")));
      }
    }
    return absl::OkStatus();
  }

  absl::Status String(const char* key, bool required, std::string* out) const {
    const Json* v = Find(key);
    if (v == nullptr) return Missing(key, required);
    if (!v->is_string()) return WrongType(key, "a string", *v);
    *out = v->get<std::string>();
    return absl::OkStatus();
  }

  absl::Status Double(const char* key, double lo, double hi,
                      double* out) const {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number()) return WrongType(key, "a number", *v);
    const double x = v->get<double>();
    if (!(x > lo && x <= hi)) {
      return Error(Key(key),
                   absl::StrCat(x, " is outside (", lo, ", ", hi, "]"));
    }
    *out = x;
    return absl::OkStatus();
  }

  absl::Status Bool(const char* key, bool* out) const {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_boolean()) return WrongType(key, "true or false", *v);
    *out = v->get<bool>();
    return absl::OkStatus();
  }

  absl::Status Int(const char* key, bool required, int lo, int hi,
                   int* out) const {
    const Json* v = Find(key);
    if (v == nullptr) return Missing(key, required);
    if (!v->is_number_integer()) return WrongType(key, "an integer", *v);
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) {
      return Error(Key(key),
                   absl::StrCat(x, " is outside [", lo, ", ", hi, "]"));
    }
    *out = static_cast<int>(x);
    return absl::OkStatus();
  }

  const Json* Find(const char* key) const {
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }
  std::string Key(absl::string_view key) const {
    return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", key);
  }
  absl::Status Error(absl::string_view key, absl::string_view message) const {
    return absl::InvalidArgumentError(
        absl::StrCat(file_, ": key \"", key, "\": ", message));
  }

 private:
  absl::Status Missing(const char* key, bool required) const {
    if (!required) return absl::OkStatus();
    return Error(Key(key), "required key is missing");
  }
  absl::Status WrongType(const char* key, absl::string_view expected,
                         const Json& got) const {
    return Error(Key(key),
                 absl::StrCat("expected ", expected, ", got ", got.dump()));
  }

  const Json& object_;
  const std::string path_;
  const absl::string_view file_;
};

// The config.json names of an enum's values, in declaration order.
template <typename E>
using EnumNames = std::initializer_list<std::pair<absl::string_view, E>>;

constexpr EnumNames<EmbeddingKind> kEmbeddingKinds = {
    {"fasttext", EmbeddingKind::kFastText}, {"table", EmbeddingKind::kTable}};
constexpr EnumNames<RecurrentKind> kRecurrentKinds = {
    {"lstm", RecurrentKind::kLstm}, {"gru", RecurrentKind::kGru}};
constexpr EnumNames<Activation> kActivations = {
    {"none", Activation::kNone},
    {"relu", Activation::kRelu},
    {"tanh", Activation::kTanh},
    {"sigmoid", Activation::kSigmoid}};
constexpr EnumNames<Precision> kPrecisions = {{"fp32", Precision::kFp32},
                                              {"bf16", Precision::kBf16},
                                              {"int8", Precision::kInt8}};
constexpr EnumNames<ComparatorOutput> kComparatorOutputs = {
    {"identity", ComparatorOutput::kIdentity},
    {"sigmoid", ComparatorOutput::kSigmoid},
    {"softmax", ComparatorOutput::kSoftmax}};

template <typename E>
absl::string_view NameOf(EnumNames<E> names, E value) {
  for (const auto& [name, v] : names) {
    if (v == value) return name;
  }
  return "?";
}

// Reads string `key` into *out through `names`; `what` names the key in the
// error for a value not listed ("unknown kind \"glove\"; known: ...").
template <typename E>
absl::Status ReadEnum(const ObjectReader& r, const char* key, bool required,
                      absl::string_view what, EnumNames<E> names, E* out) {
  std::string text;
  if (!required) text = std::string(NameOf(names, *out));
  CTXEMBED_RETURN_IF_ERROR(r.String(key, required, &text));
  std::vector<absl::string_view> known;
  for (const auto& [name, v] : names) {
    if (name == text) {
      *out = v;
      return absl::OkStatus();
    }
    known.push_back(name);
  }
  return r.Error(r.Key(key),
                 absl::StrCat("unknown ", what, " \"", text,
                              "\"; known: ", absl::StrJoin(known, ", ")));
}

absl::Status ParseTokenizer(const ObjectReader& top, absl::string_view file,
                            Tokenizer::Options* out) {
  const Json* v = top.Find("tokenizer");
  if (v == nullptr) return absl::OkStatus();
  ObjectReader r(*v, "tokenizer", file);
  CTXEMBED_RETURN_IF_ERROR(r.CheckIsObject());
  CTXEMBED_RETURN_IF_ERROR(r.CheckKeys({"kind", "lowercase"}));
  CTXEMBED_RETURN_IF_ERROR(r.String("kind", false, &out->kind));
  CTXEMBED_RETURN_IF_ERROR(r.Bool("lowercase", &out->lowercase));
  absl::Status s = Tokenizer::Create(*out).status();
  if (!s.ok()) return r.Error("tokenizer.kind", s.message());
  return absl::OkStatus();
}

absl::Status ParseEmbedding(const ObjectReader& tower, absl::string_view file,
                            EmbeddingConfig* out) {
  const Json* v = tower.Find("embedding");
  if (v == nullptr) {
    return tower.Error(tower.Key("embedding"), "required key is missing");
  }
  ObjectReader r(*v, tower.Key("embedding"), file);
  CTXEMBED_RETURN_IF_ERROR(r.CheckIsObject());
  CTXEMBED_RETURN_IF_ERROR(
      ReadEnum(r, "kind", true, "kind", kEmbeddingKinds, &out->kind));
  if (out->kind == EmbeddingKind::kFastText) {
    CTXEMBED_RETURN_IF_ERROR(r.CheckKeys({"kind", "file"}));
    CTXEMBED_RETURN_IF_ERROR(r.String("file", true, &out->file));
    if (out->file.empty()) return r.Error(r.Key("file"), "is empty");
    return absl::OkStatus();
  }
  CTXEMBED_RETURN_IF_ERROR(
      r.CheckKeys({"kind", "tensor", "vocab", "unk_token"}));
  CTXEMBED_RETURN_IF_ERROR(r.String("tensor", true, &out->tensor));
  CTXEMBED_RETURN_IF_ERROR(r.String("vocab", true, &out->vocab));
  out->unk_token = "<unk>";
  return r.String("unk_token", false, &out->unk_token);
}

absl::Status ParseModule(const Json& json, const std::string& path,
                         absl::string_view file, RecurrentConfig* out) {
  ObjectReader r(json, path, file);
  CTXEMBED_RETURN_IF_ERROR(r.CheckIsObject());
  CTXEMBED_RETURN_IF_ERROR(
      r.CheckKeys({"kind", "prefix", "input_size", "hidden_size", "num_layers",
                   "bidirectional", "residual", "concat_input"}));
  CTXEMBED_RETURN_IF_ERROR(
      ReadEnum(r, "kind", true, "kind", kRecurrentKinds, &out->kind));
  CTXEMBED_RETURN_IF_ERROR(r.String("prefix", true, &out->prefix));
  CTXEMBED_RETURN_IF_ERROR(
      r.Int("input_size", true, 1, 1 << 16, &out->input_size));
  CTXEMBED_RETURN_IF_ERROR(
      r.Int("hidden_size", true, 1, 1 << 16, &out->hidden_size));
  CTXEMBED_RETURN_IF_ERROR(r.Int("num_layers", false, 1, 64, &out->num_layers));
  CTXEMBED_RETURN_IF_ERROR(r.Bool("bidirectional", &out->bidirectional));
  CTXEMBED_RETURN_IF_ERROR(r.Bool("residual", &out->residual));
  CTXEMBED_RETURN_IF_ERROR(r.Bool("concat_input", &out->concat_input));
  if (out->residual && out->concat_input) {
    return r.Error(r.Key("concat_input"), "excludes \"residual\"");
  }
  return absl::OkStatus();
}

absl::Status ParseLinear(const Json& json, const std::string& path,
                         absl::string_view file, LinearConfig* out) {
  ObjectReader r(json, path, file);
  CTXEMBED_RETURN_IF_ERROR(r.CheckIsObject());
  CTXEMBED_RETURN_IF_ERROR(r.CheckKeys({"prefix", "activation"}));
  CTXEMBED_RETURN_IF_ERROR(r.String("prefix", true, &out->prefix));
  return ReadEnum(r, "activation", false, "activation", kActivations,
                  &out->activation);
}

absl::Status ParseSif(const Json& json, const std::string& path,
                      absl::string_view file, SifConfig* out) {
  ObjectReader r(json, path, file);
  CTXEMBED_RETURN_IF_ERROR(r.CheckIsObject());
  CTXEMBED_RETURN_IF_ERROR(r.CheckKeys({"a", "counts", "components"}));
  CTXEMBED_RETURN_IF_ERROR(r.Double("a", 0.0, 1.0, &out->a));
  CTXEMBED_RETURN_IF_ERROR(r.String("counts", false, &out->counts));
  return r.String("components", false, &out->components);
}

absl::Status ParseTower(const ObjectReader& r, absl::string_view file,
                        TowerConfig* out) {
  CTXEMBED_RETURN_IF_ERROR(ParseEmbedding(r, file, &out->embedding));
  if (const Json* v = r.Find("encoder")) {
    if (!v->is_array()) {
      return r.Error(
          r.Key("encoder"),
          absl::StrCat("expected a list of modules, got ", v->dump()));
    }
    for (size_t i = 0; i < v->size(); ++i) {
      RecurrentConfig module;
      CTXEMBED_RETURN_IF_ERROR(ParseModule(
          (*v)[i], absl::StrCat(r.Key("encoder"), "[", i, "]"), file, &module));
      out->encoder.push_back(module);
    }
  }
  std::string pooling = out->encoder.empty() ? "fasttext" : "mean";
  CTXEMBED_RETURN_IF_ERROR(r.String("pooling", false, &pooling));
  absl::StatusOr<Pooling> p = ParsePooling(pooling);
  if (!p.ok()) return r.Error(r.Key("pooling"), p.status().message());
  if (*p == Pooling::kLast && out->encoder.empty()) {
    return r.Error(r.Key("pooling"), "\"last\" needs an encoder module");
  }
  if (*p == Pooling::kLast && out->encoder.back().concat_input) {
    return r.Error(r.Key("pooling"),
                   "\"last\" needs a top encoder module without "
                   "concat_input (its final states are smaller than its "
                   "token vectors)");
  }
  out->pooling = *p;
  if (const Json* v = r.Find("sif")) {
    out->sif.emplace();
    CTXEMBED_RETURN_IF_ERROR(ParseSif(*v, r.Key("sif"), file, &*out->sif));
  }
  if (const Json* v = r.Find("projection")) {
    out->projection.emplace();
    CTXEMBED_RETURN_IF_ERROR(
        ParseLinear(*v, r.Key("projection"), file, &*out->projection));
  }
  return r.Bool("normalize", &out->normalize);
}

absl::Status ParseComparator(const ObjectReader& top, absl::string_view file,
                             ComparatorConfig* out) {
  ObjectReader r(*top.Find("comparator"), "comparator", file);
  CTXEMBED_RETURN_IF_ERROR(r.CheckIsObject());
  CTXEMBED_RETURN_IF_ERROR(r.CheckKeys({"layers", "output", "score_class"}));
  const Json* layers = r.Find("layers");
  if (layers == nullptr || !layers->is_array() || layers->empty()) {
    return r.Error("comparator.layers", "expected a non-empty list of layers");
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    LinearConfig layer;
    CTXEMBED_RETURN_IF_ERROR(
        ParseLinear((*layers)[i], absl::StrCat("comparator.layers[", i, "]"),
                    file, &layer));
    out->layers.push_back(layer);
  }
  CTXEMBED_RETURN_IF_ERROR(
      ReadEnum(r, "output", false, "output", kComparatorOutputs, &out->output));
  return r.Int("score_class", false, 0, 1 << 16, &out->score_class);
}

constexpr std::initializer_list<absl::string_view> kTowerKeys = {
    "embedding", "encoder", "pooling", "sif", "projection", "normalize"};

absl::Status ParseTowers(const ObjectReader& top, absl::string_view file,
                         ModelConfig* config) {
  const Json* towers = top.Find("towers");
  if (towers == nullptr) {  // a single encoder, its keys at the top level
    TowerConfig tower;
    CTXEMBED_RETURN_IF_ERROR(ParseTower(top, file, &tower));
    config->towers.emplace_back("enc0", std::move(tower));
    if (top.Find("comparator") != nullptr) {
      return top.Error("comparator", "needs two towers (key \"towers\")");
    }
    return absl::OkStatus();
  }
  for (absl::string_view key : kTowerKeys) {
    if (top.Find(std::string(key).c_str()) != nullptr) {
      return top.Error(key, "belongs inside each tower when \"towers\" is set");
    }
  }
  ObjectReader r(*towers, "towers", file);
  CTXEMBED_RETURN_IF_ERROR(r.CheckIsObject());
  CTXEMBED_RETURN_IF_ERROR(r.CheckKeys({"enc0", "enc1"}));
  for (const char* name : {"enc0", "enc1"}) {
    const Json* t = r.Find(name);
    if (t == nullptr) return r.Error(r.Key(name), "required key is missing");
    ObjectReader tr(*t, r.Key(name), file);
    CTXEMBED_RETURN_IF_ERROR(tr.CheckIsObject());
    CTXEMBED_RETURN_IF_ERROR(tr.CheckKeys(kTowerKeys));
    TowerConfig tower;
    CTXEMBED_RETURN_IF_ERROR(ParseTower(tr, file, &tower));
    config->towers.emplace_back(name, std::move(tower));
  }
  if (top.Find("comparator") != nullptr) {
    config->comparator.emplace();
    CTXEMBED_RETURN_IF_ERROR(ParseComparator(top, file, &*config->comparator));
  }
  return absl::OkStatus();
}

bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<ModelConfig> ParseTop(const Json& json, absl::string_view file) {
  ModelConfig config;
  ObjectReader top(json, "", file);
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": expected a JSON object at the top level"));
  }
  CTXEMBED_RETURN_IF_ERROR(top.CheckKeys(
      {"ctxembed_format", "name", "max_tokens", "tokenizer", "weights",
       "embedding", "encoder", "pooling", "sif", "projection", "normalize",
       "towers", "comparator", "precision", "matryoshka_dimensions"}));
  CTXEMBED_RETURN_IF_ERROR(top.Int("ctxembed_format", true, kFormatVersion,
                                   kFormatVersion, &config.format_version));
  CTXEMBED_RETURN_IF_ERROR(top.String("name", true, &config.name));
  if (!IsValidName(config.name)) {
    return top.Error("name", "must be 1-128 characters of A-Z a-z 0-9 . _ -");
  }
  CTXEMBED_RETURN_IF_ERROR(
      top.Int("max_tokens", false, 1, kMaxTokensLimit, &config.max_tokens));
  CTXEMBED_RETURN_IF_ERROR(ParseTokenizer(top, file, &config.tokenizer));
  CTXEMBED_RETURN_IF_ERROR(top.String("weights", false, &config.weights));
  CTXEMBED_RETURN_IF_ERROR(ParseTowers(top, file, &config));
  CTXEMBED_RETURN_IF_ERROR(ReadEnum(top, "precision", false, "precision",
                                    kPrecisions, &config.precision));
  for (auto& [name, tower] : config.towers) {
    for (RecurrentConfig& m : tower.encoder) m.precision = config.precision;
  }
  if (auto it = json.find("matryoshka_dimensions"); it != json.end()) {
    if (!it->is_array()) {
      return top.Error("matryoshka_dimensions",
                       "expected an array of ascending positive integers");
    }
    for (const Json& d : *it) {
      if (!d.is_number_integer() || d.get<int64_t>() < 1 ||
          d.get<int64_t>() > (1 << 16) ||
          (!config.matryoshka_dimensions.empty() &&
           d.get<int64_t>() <= config.matryoshka_dimensions.back())) {
        return top.Error("matryoshka_dimensions",
                         absl::StrCat("expected ascending positive integers, "
                                      "got ",
                                      it->dump()));
      }
      config.matryoshka_dimensions.push_back(d.get<int>());
    }
  }
  return config;
}

}  // namespace

absl::string_view EmbeddingKindName(EmbeddingKind kind) {
  return NameOf(kEmbeddingKinds, kind);
}
absl::string_view ActivationName(Activation activation) {
  return NameOf(kActivations, activation);
}
absl::string_view PrecisionName(Precision precision) {
  return NameOf(kPrecisions, precision);
}
std::optional<Precision> PrecisionFromName(absl::string_view name) {
  for (const auto& [n, value] : kPrecisions) {
    if (n == name) return value;
  }
  return std::nullopt;
}
absl::string_view ComparatorOutputName(ComparatorOutput output) {
  return NameOf(kComparatorOutputs, output);
}

bool ModelConfig::NeedsWeights() const {
  for (const auto& [name, tower] : towers) {
    if (!tower.encoder.empty() || tower.projection || tower.transformer ||
        tower.embedding.kind == EmbeddingKind::kTable) {
      return true;
    }
  }
  return comparator.has_value();
}

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text,
                                             absl::string_view file_name) {
  CTXEMBED_ASSIGN_OR_RETURN(Json json, ParseJsonStrict(json_text, file_name));
  return ParseTop(json, file_name);
}

}  // namespace ctxembed
