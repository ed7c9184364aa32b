#include "server/http_api.h"

#include <cmath>
#include <cstring>
#include <optional>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "inference/json_writer.h"
#include "model/status_macros.h"
#include "simdjson.h"

namespace ctxembed {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

using simdjson::dom::element;
using simdjson::dom::object;

// A string element's text (callers checked is_string; "" otherwise).
std::string Text(element e) {
  std::string_view v;
  if (e.get_string().get(v) != simdjson::SUCCESS) return std::string();
  return std::string(v);
}

// `inputs` as a string or an array of strings into `out`.
absl::Status ReadInputs(element v, absl::string_view field,
                        google::protobuf::RepeatedPtrField<std::string>* out) {
  if (v.is_string()) {
    out->Add(Text(v));
    return absl::OkStatus();
  }
  simdjson::dom::array array;
  if (v.get_array().get(array) != simdjson::SUCCESS) {
    return Invalid(field, "must be a string or an array of strings");
  }
  size_t i = 0;
  for (element e : array) {
    if (e.is_string()) {
      out->Add(Text(e));
    } else if (e.is_number() || e.is_array()) {
      return Invalid(field,
                     "token ids are not accepted; send the text (strings)");
    } else {
      return Invalid(absl::StrCat(field, "[", i, "]"), "must be a string");
    }
    ++i;
  }
  return absl::OkStatus();
}

// The member `name` of `o`, or nothing when absent or null.
std::optional<element> Member(object o, const char* name) {
  element e;
  if (o[name].get(e) != simdjson::SUCCESS || e.is_null()) return std::nullopt;
  return e;
}

absl::Status ReadBool(object o, const char* name, bool* out) {
  std::optional<element> e = Member(o, name);
  if (!e) return absl::OkStatus();
  if (e->get_bool().get(*out) != simdjson::SUCCESS) {
    return Invalid(name, "must be true or false");
  }
  return absl::OkStatus();
}

absl::Status ReadString(object o, const char* name, std::string* out) {
  std::optional<element> e = Member(o, name);
  if (!e) return absl::OkStatus();
  if (!e->is_string()) return Invalid(name, "must be a string");
  *out = Text(*e);
  return absl::OkStatus();
}

// Truncation the TEI way: "truncate" (default: the server's) and
// "truncation_direction" ("right", the default, or "left": keep the end).
// "truncate", defaulting to the server's --auto_truncate.
template <typename Request>
absl::Status ReadTruncate(object o, const HttpApiOptions& options,
                          Request* request) {
  bool truncate = options.auto_truncate;
  if (absl::Status s = ReadBool(o, "truncate", &truncate); !s.ok()) return s;
  request->set_truncate(truncate);
  return absl::OkStatus();
}

template <typename Request>  // EmbedRequest or TokenizeRequest
absl::Status ReadTruncation(object o, const HttpApiOptions& options,
                            Request* request) {
  if (absl::Status s = ReadTruncate(o, options, request); !s.ok()) return s;
  std::string direction = "right";
  if (absl::Status s = ReadString(o, "truncation_direction", &direction);
      !s.ok()) {
    return s;
  }
  if (direction == "Right" || direction == "right") return absl::OkStatus();
  if (direction == "Left" || direction == "left") {
    request->set_truncation_direction(v1::TRUNCATION_DIRECTION_LEFT);
    return absl::OkStatus();
  }
  return Invalid("truncation_direction", "must be \"right\" or \"left\"");
}

// The OpenAI embeddings body: input, model, encoding_format ("float" or
// "base64"), user (ignored), dimensions, normalize (default true: OpenAI's
// vectors have unit length) and the truncation fields.
absl::Status ReadOpenAiEmbeddings(object doc, const HttpApiOptions& options,
                                  HttpCall* call) {
  v1::EmbedRequest& r = call->embed;
  std::optional<element> input = Member(doc, "input");
  if (!input) return Invalid("input", "is required");
  CTXEMBED_RETURN_IF_ERROR(ReadInputs(*input, "input", r.mutable_inputs()));
  std::string model, format = "float", ignored;
  CTXEMBED_RETURN_IF_ERROR(ReadString(doc, "model", &model));
  r.set_model(model);
  CTXEMBED_RETURN_IF_ERROR(ReadString(doc, "encoding_format", &format));
  if (format == "base64") {
    call->base64 = true;
  } else if (format != "float") {
    return Invalid("encoding_format", "must be \"float\" or \"base64\"");
  }
  CTXEMBED_RETURN_IF_ERROR(ReadString(doc, "user", &ignored));
  if (std::optional<element> dims = Member(doc, "dimensions")) {
    int64_t n = 0;
    if (dims->get_int64().get(n) != simdjson::SUCCESS || n < 1 ||
        n > (1 << 20)) {
      return Invalid("dimensions", "must be a positive integer");
    }
    call->dimensions = static_cast<int>(n);
  }
  bool normalize = true;
  CTXEMBED_RETURN_IF_ERROR(ReadBool(doc, "normalize", &normalize));
  r.set_normalize(normalize);
  return ReadTruncate(doc, options, &r);
}

// TEI's /similarity inputs, {"source_sentence": s, "sentences": [...]}: one
// pair (s, sentence) per sentence.
absl::Status ReadSimilarityInputs(element inputs, v1::ScoreRequest* r) {
  object in;
  if (inputs.get_object().get(in) != simdjson::SUCCESS) {
    return Invalid("inputs",
                   "must be {\"source_sentence\": ..., \"sentences\": [...]}");
  }
  std::optional<element> src = Member(in, "source_sentence");
  if (!src || !src->is_string()) {
    return Invalid("inputs.source_sentence", "must be a string");
  }
  const std::string source = Text(*src);
  std::optional<element> sentences = Member(in, "sentences");
  if (!sentences) return Invalid("inputs.sentences", "is required");
  google::protobuf::RepeatedPtrField<std::string> others;
  CTXEMBED_RETURN_IF_ERROR(ReadInputs(*sentences, "inputs.sentences", &others));
  for (std::string& other : others) {
    v1::Pair* pair = r->add_pairs();
    pair->set_a(source);
    pair->set_b(std::move(other));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HttpRoute> FindRoute(absl::string_view method,
                                    absl::string_view path) {
  path = path.substr(0, path.find('?'));
  struct Entry {
    const char* path;
    const char* method;
    HttpRoute route;
  };
  static constexpr Entry kRoutes[] = {
      {"/v1/embeddings", "POST", HttpRoute::kOpenAiEmbeddings},
      {"/embeddings", "POST", HttpRoute::kOpenAiEmbeddings},
      {"/embed", "POST", HttpRoute::kEmbed},
      {"/embed_all", "POST", HttpRoute::kEmbedAll},
      {"/tokenize", "POST", HttpRoute::kTokenize},
      {"/similarity", "POST", HttpRoute::kSimilarity},
      {"/info", "GET", HttpRoute::kInfo},
      {"/health", "GET", HttpRoute::kHealth},
  };
  for (const Entry& e : kRoutes) {
    if (path != e.path) continue;
    if (method != e.method && !(method == "HEAD" && !strcmp(e.method, "GET"))) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " takes ", e.method, ", not ", method));
    }
    return e.route;
  }
  return absl::NotFoundError(absl::StrCat(
      "no route ", path,
      "; routes: POST /v1/embeddings, /embed, /embed_all, /tokenize, "
      "/similarity; GET /info, /health"));
}

Method MetricMethod(HttpRoute route) {
  switch (route) {
    case HttpRoute::kOpenAiEmbeddings:
      return Method::kHttpOpenAiEmbeddings;
    case HttpRoute::kEmbed:
      return Method::kHttpEmbed;
    case HttpRoute::kEmbedAll:
      return Method::kHttpEmbedAll;
    case HttpRoute::kTokenize:
      return Method::kHttpTokenize;
    case HttpRoute::kSimilarity:
      return Method::kHttpSimilarity;
    case HttpRoute::kInfo:
      return Method::kHttpInfo;
    case HttpRoute::kHealth:
      return Method::kHttpHealth;
  }
  return Method::kHttpInfo;
}

absl::StatusOr<HttpCall> ParseHttpCall(HttpRoute route, absl::string_view body,
                                       const HttpApiOptions& options) {
  HttpCall call;
  call.route = route;
  if (route == HttpRoute::kInfo || route == HttpRoute::kHealth) return call;
  // One parser per thread (a parser is not thread-safe; its buffers are
  // reused from call to call). Strings are copied out before it is reused.
  thread_local simdjson::dom::parser parser;
  element root;
  if (const simdjson::error_code error =
          parser.parse(body.data(), body.size()).get(root);
      error != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON: ", simdjson::error_message(error)));
  }
  object doc;
  if (root.get_object().get(doc) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("the body must be a JSON object");
  }
  if (route == HttpRoute::kOpenAiEmbeddings) {
    CTXEMBED_RETURN_IF_ERROR(ReadOpenAiEmbeddings(doc, options, &call));
    return call;
  }
  std::optional<element> inputs = Member(doc, "inputs");
  if (!inputs) return Invalid("inputs", "is required");
  std::string model;
  CTXEMBED_RETURN_IF_ERROR(ReadString(doc, "model", &model));
  switch (route) {
    case HttpRoute::kSimilarity:
      call.score.set_model(model);
      CTXEMBED_RETURN_IF_ERROR(ReadSimilarityInputs(*inputs, &call.score));
      CTXEMBED_RETURN_IF_ERROR(ReadTruncate(doc, options, &call.score));
      return call;
    case HttpRoute::kTokenize:
      call.tokenize.set_model(model);
      CTXEMBED_RETURN_IF_ERROR(
          ReadInputs(*inputs, "inputs", call.tokenize.mutable_inputs()));
      CTXEMBED_RETURN_IF_ERROR(ReadTruncation(doc, options, &call.tokenize));
      return call;
    default: {  // /embed and /embed_all
      v1::EmbedRequest& r = call.embed;
      r.set_model(model);
      CTXEMBED_RETURN_IF_ERROR(
          ReadInputs(*inputs, "inputs", r.mutable_inputs()));
      bool normalize = route == HttpRoute::kEmbed;  // TEI: /embed normalizes
      CTXEMBED_RETURN_IF_ERROR(ReadBool(doc, "normalize", &normalize));
      r.set_normalize(normalize);
      CTXEMBED_RETURN_IF_ERROR(ReadTruncation(doc, options, &r));
      return call;
    }
  }
}

std::string OpenAiEmbeddingsJson(const HttpCall& call,
                                 const v1::EmbedResponse& response) {
  std::string out = R"({"object":"list","data":[)";
  for (int i = 0; i < response.embeddings_size(); ++i) {
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, R"({"object":"embedding","index":)", i,
                    R"(,"embedding":)");
    v1::Vector cut;
    const v1::Vector* vp = &response.embeddings(i);
    if (call.cut_to > 0 && call.cut_to < vp->values_size()) {
      // A Matryoshka model's prefix, at unit length again if asked.
      cut.mutable_values()->Assign(vp->values().begin(),
                                   vp->values().begin() + call.cut_to);
      if (call.renormalize) {
        double norm = 0;
        for (float x : cut.values()) norm += static_cast<double>(x) * x;
        if (norm > 0) {
          const float scale = static_cast<float>(1.0 / std::sqrt(norm));
          for (float& x : *cut.mutable_values()) x *= scale;
        }
      }
      vp = &cut;
    }
    const v1::Vector& v = *vp;
    if (call.base64) {
      // Little-endian float32, as OpenAI's base64 encoding.
      std::string bytes(sizeof(float) * v.values_size(), '\0');
      std::memcpy(bytes.data(), v.values().data(), bytes.size());
      out.push_back('"');
      out.append(absl::Base64Escape(bytes));
      out.push_back('"');
    } else {
      AppendJsonFloats(v, &out);
    }
    out.push_back('}');
  }
  out.append(R"(],"model":)");
  AppendJsonString(response.model(), &out);
  absl::StrAppend(&out, R"(,"usage":{"prompt_tokens":)",
                  response.usage().tokens(), R"(,"total_tokens":)",
                  response.usage().tokens(), "}}");
  return out;
}

std::string EmbedJson(const v1::EmbedResponse& response) {
  std::string out = "[";
  for (int i = 0; i < response.embeddings_size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendJsonFloats(response.embeddings(i), &out);
  }
  out.push_back(']');
  return out;
}

std::string EmbedAllJson(const v1::EmbedTokensResponse& response) {
  std::string out = "[";
  for (int i = 0; i < response.results_size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('[');
    const v1::TokenEmbeddings& r = response.results(i);
    for (int k = 0; k < r.vectors_size(); ++k) {
      if (k > 0) out.push_back(',');
      AppendJsonFloats(r.vectors(k), &out);
    }
    out.push_back(']');
  }
  out.push_back(']');
  return out;
}

std::string TokenizeJson(const v1::TokenizeResponse& response) {
  std::string out = "[";
  for (int i = 0; i < response.results_size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('[');
    const v1::TokenList& r = response.results(i);
    for (int k = 0; k < r.tokens_size(); ++k) {
      if (k > 0) out.push_back(',');
      out.append(R"({"text":)");
      AppendJsonString(r.tokens(k), &out);
      out.append(R"(,"special":false})");
    }
    out.push_back(']');
  }
  out.push_back(']');
  return out;
}

std::string SimilarityJson(const v1::ScoreResponse& response) {
  std::string out = "[";
  for (int i = 0; i < response.scores_size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendJsonFloat(response.scores(i), &out);
  }
  out.push_back(']');
  return out;
}

std::string InfoJson(const v1::ModelInfo& model, int max_inputs_per_request,
                     int64_t max_message_bytes) {
  std::string out = R"({"model_id":)";
  AppendJsonString(model.name(), &out);
  absl::StrAppend(&out, R"(,"model_version":)", model.version(),
                  R"(,"model_type":{"embedding":{"pooling":)");
  AppendJsonString(model.pooling(), &out);
  out.append(R"(}},"architecture":)");
  AppendJsonString(model.architecture(), &out);
  absl::StrAppend(&out, R"(,"model_dtype":"float32","dimension":)",
                  model.dimension(), R"(,"max_input_length":)",
                  model.max_tokens(), R"(,"max_client_batch_size":)",
                  max_inputs_per_request, R"(,"max_message_bytes":)",
                  max_message_bytes, "}");
  return out;
}

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ErrorJson(const absl::Status& status) {
  const int http = HttpStatusFor(status.code());
  const char* type = http == 401   ? "authentication_error"
                     : http == 403 ? "permission_error"
                     : http == 404 ? "not_found_error"
                     : http == 429 ? "rate_limit_error"
                     : http < 500  ? "invalid_request_error"
                                   : "server_error";
  std::string code = absl::StatusCodeToString(status.code());
  for (char& c : code) c = absl::ascii_tolower(static_cast<unsigned char>(c));
  std::string out = R"({"error":{"message":)";
  AppendJsonString(status.message(), &out);
  out.append(R"(,"type":)");
  AppendJsonString(type, &out);
  out.append(R"(,"code":)");
  AppendJsonString(code, &out);
  out.append("}}");
  return out;
}

}  // namespace ctxembed
