// The HTTP/JSON front door's request and answer shapes, without the
// transport: OpenAI's POST /v1/embeddings and text-embeddings-inference's
// /embed, /embed_all, /tokenize, /info and /health, mapped onto the same
// proto requests (and so the same RequestHandler, limits and errors) as
// gRPC. JSON is read with simdjson and floats written with std::to_chars
// (shortest text that reads back to the same float).
#ifndef CTXEMBED_SERVER_HTTP_API_H_
#define CTXEMBED_SERVER_HTTP_API_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ctxembed/v1/embedder.pb.h"
#include "server/metrics.h"

namespace ctxembed {

enum class HttpRoute {
  kOpenAiEmbeddings,  // POST /v1/embeddings
  kEmbed,             // POST /embed
  kEmbedAll,          // POST /embed_all
  kTokenize,          // POST /tokenize
  kSimilarity,        // POST /similarity
  kInfo,              // GET /info
  kHealth,            // GET /health
};

// The route of `method` `path` (query string ignored): NOT_FOUND for an
// unknown path, a 405-worthy FAILED_PRECONDITION for a known path with the
// wrong method.
absl::StatusOr<HttpRoute> FindRoute(absl::string_view method,
                                    absl::string_view path);
Method MetricMethod(HttpRoute route);

// A parsed request body, as the proto request the route runs.
struct HttpCall {
  HttpRoute route = HttpRoute::kEmbed;
  v1::EmbedRequest embed;        // kOpenAiEmbeddings, kEmbed, kEmbedAll
  v1::TokenizeRequest tokenize;  // kTokenize
  v1::ScoreRequest score;        // kSimilarity: (source, sentence i) pairs
  bool base64 = false;           // OpenAI encoding_format "base64"
  int dimensions = 0;            // OpenAI "dimensions" (0: not given)
  // Set by the server once the model is known: cut vectors to this length
  // (one of its matryoshka_dimensions), then normalize if `renormalize`.
  int cut_to = 0;
  bool renormalize = false;
};

struct HttpApiOptions {
  // truncate when the request does not say (--auto_truncate).
  bool auto_truncate = false;
};

// INVALID_ARGUMENT, naming the field, for bad JSON or a bad field.
absl::StatusOr<HttpCall> ParseHttpCall(HttpRoute route, absl::string_view body,
                                       const HttpApiOptions& options);

// Answer bodies.
std::string OpenAiEmbeddingsJson(const HttpCall& call,
                                 const v1::EmbedResponse& response);
std::string EmbedJson(const v1::EmbedResponse& response);
std::string EmbedAllJson(const v1::EmbedTokensResponse& response);
std::string TokenizeJson(const v1::TokenizeResponse& response);
std::string SimilarityJson(const v1::ScoreResponse& response);
std::string InfoJson(const v1::ModelInfo& model, int max_inputs_per_request,
                     int64_t max_message_bytes);

// The HTTP status for a status code, and OpenAI's error shape:
// {"error": {"message", "type", "code"}}.
int HttpStatusFor(absl::StatusCode code);
std::string ErrorJson(const absl::Status& status);

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_HTTP_API_H_
