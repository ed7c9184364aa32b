#include "model/model_config.h"

#include <initializer_list>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
    return Error(path_, absl::StrCat("expected an object, got ",
                                     object_.type_name()));
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
      return Error(Key(key), absl::StrCat(x, " is outside [", lo, ", ", hi, "]"));
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
    return Error(Key(key), absl::StrCat("expected ", expected, ", got ",
                                        got.dump()));
  }

  const Json& object_;
  const std::string path_;
  const absl::string_view file_;
};

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

absl::Status ParseEmbedding(const ObjectReader& top, absl::string_view file,
                            EmbeddingConfig* out) {
  const Json* v = top.Find("embedding");
  if (v == nullptr) return top.Error("embedding", "required key is missing");
  ObjectReader r(*v, "embedding", file);
  CTXEMBED_RETURN_IF_ERROR(r.CheckIsObject());
  CTXEMBED_RETURN_IF_ERROR(r.CheckKeys({"kind", "file"}));
  CTXEMBED_RETURN_IF_ERROR(r.String("kind", true, &out->kind));
  if (out->kind != "fasttext") {
    return r.Error("embedding.kind", absl::StrCat("unknown kind \"", out->kind,
                                                  "\"; known: fasttext"));
  }
  CTXEMBED_RETURN_IF_ERROR(r.String("file", true, &out->file));
  if (out->file.empty()) return r.Error("embedding.file", "is empty");
  return absl::OkStatus();
}

absl::Status ParseEncoder(const ObjectReader& top) {
  const Json* v = top.Find("encoder");
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_array()) {
    return top.Error("encoder", absl::StrCat("expected a list of modules, got ",
                                             v->dump()));
  }
  if (!v->empty()) {
    // Recurrent modules come with the encoder format; until then a model
    // that needs them must not be served as a bag of vectors.
    return top.Error("encoder", "this build serves only bag-of-vectors "
                                "models (an empty encoder list)");
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
  CTXEMBED_RETURN_IF_ERROR(top.CheckKeys({"ctxembed_format", "name",
                                          "max_tokens", "tokenizer",
                                          "embedding", "encoder", "pooling"}));
  CTXEMBED_RETURN_IF_ERROR(top.Int("ctxembed_format", true, kFormatVersion,
                                   kFormatVersion, &config.format_version));
  CTXEMBED_RETURN_IF_ERROR(top.String("name", true, &config.name));
  if (!IsValidName(config.name)) {
    return top.Error("name", "must be 1-128 characters of A-Z a-z 0-9 . _ -");
  }
  CTXEMBED_RETURN_IF_ERROR(top.Int("max_tokens", false, 1, kMaxTokensLimit,
                                   &config.max_tokens));
  CTXEMBED_RETURN_IF_ERROR(ParseTokenizer(top, file, &config.tokenizer));
  CTXEMBED_RETURN_IF_ERROR(ParseEmbedding(top, file, &config.embedding));
  CTXEMBED_RETURN_IF_ERROR(ParseEncoder(top));
  std::string pooling = "fasttext";
  CTXEMBED_RETURN_IF_ERROR(top.String("pooling", false, &pooling));
  absl::StatusOr<Pooling> p = ParsePooling(pooling);
  if (!p.ok()) return top.Error("pooling", p.status().message());
  config.pooling = *p;
  return config;
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json_text,
                                             absl::string_view file_name) {
  Json json;
  try {
    json = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, ": invalid JSON at byte ", e.byte, ": ",
                     e.what()));
  }
  return ParseTop(json, file_name);
}

}  // namespace ctxembed
