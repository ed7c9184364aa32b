// Serves the Embedder RPCs' logic on loaded models, free of gRPC types (it
// speaks the proto messages only) so the CLI's --local mode and tests use
// the same code as the server.
#ifndef CTXEMBED_INFERENCE_REQUEST_HANDLER_H_
#define CTXEMBED_INFERENCE_REQUEST_HANDLER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ctxembed/v1/embedder.pb.h"
#include "inference/embed_job.h"
#include "inference/model_registry.h"

namespace ctxembed {

// What one call did, for metrics and logs.
struct CallStats {
  std::string model;   // name of the model that served the call
  int64_t tokens = 0;  // tokens processed (after truncation)
};

// An Embed / EmbedTokens request checked and tokenized, ready to run.
struct PreparedEmbed {
  Servable servable;
  EmbedJob::Spec spec;
  std::vector<TokenList> sentences;
};

// A Score request checked and tokenized: one job's worth of sentences per
// spec (texts a then texts b through a single tower; or a through the first
// tower and b through the second).
struct PreparedScore {
  Servable servable;
  std::vector<EmbedJob::Spec> specs;
  std::vector<std::vector<TokenList>> sentences;
};

// Thread-safe; holds no per-call state. The registry must outlive it.
class RequestHandler {
 public:
  struct Options {
    // Most inputs (or pairs, for Score) one request may carry.
    int max_inputs_per_request = 256;
    // Longest token, in bytes; longer ones are cut (at a UTF-8 character
    // boundary). Bounds subword work; 0: no bound.
    int max_token_bytes = 1024;
    // Largest answer that can be sent (the server's max_message_bytes);
    // Embed and EmbedTokens requests whose answer must be larger are
    // refused with OUT_OF_RANGE before any work. 0: no bound.
    int64_t max_response_bytes = 0;
    // The server's --auto_truncate: the protocol layers make it the default
    // of a request's truncate (gRPC's proto3 bool cannot say "unset", so
    // there it turns truncation on; over HTTP an explicit false wins).
    bool auto_truncate = false;
  };

  RequestHandler(const Options& options, const ModelRegistry* registry)
      : options_(options), registry_(registry) {}

  // Each method fills *response and *stats and returns OK, or returns
  // INVALID_ARGUMENT (no inputs, too many, invalid UTF-8, an input over
  // max_tokens without truncate, an unknown pooling), NOT_FOUND (unknown
  // model) or UNAVAILABLE (no model loaded), with a message naming the input
  // index and the limit; *response is then unspecified. Embed, EmbedTokens
  // and Score run on the model's batcher (inline without one) and block
  // until it has run them; its errors (RESOURCE_EXHAUSTED, UNAVAILABLE)
  // come back as they are.
  absl::Status Embed(const v1::EmbedRequest& request,
                     v1::EmbedResponse* response, CallStats* stats) const;
  absl::Status EmbedTokens(const v1::EmbedRequest& request,
                           v1::EmbedTokensResponse* response,
                           CallStats* stats) const;
  absl::Status Score(const v1::ScoreRequest& request,
                     v1::ScoreResponse* response, CallStats* stats) const;
  absl::Status Tokenize(const v1::TokenizeRequest& request,
                        v1::TokenizeResponse* response, CallStats* stats) const;
  absl::Status ListModels(const v1::ListModelsRequest& request,
                          v1::ListModelsResponse* response) const;

  // The two halves of Embed / EmbedTokens, for callers that run the work
  // elsewhere (the batcher): Prepare validates and tokenizes, with the
  // errors listed above; Fill*Response writes a finished job's results.
  absl::StatusOr<PreparedEmbed> Prepare(const v1::EmbedRequest& request,
                                        EmbedJob::Kind kind,
                                        CallStats* stats) const;
  static void FillEmbedResponse(const v1::EmbedRequest& request,
                                const Servable& servable, EmbedJob& job,
                                v1::EmbedResponse* response);
  static void FillTokensResponse(const v1::EmbedRequest& request,
                                 const Servable& servable, EmbedJob& job,
                                 v1::EmbedTokensResponse* response);
  // The same two halves for Score: `jobs` are PrepareScore's, finished OK.
  absl::StatusOr<PreparedScore> PrepareScore(const v1::ScoreRequest& request,
                                             CallStats* stats) const;
  static void FillScoreResponse(
      const v1::ScoreRequest& request, const Servable& servable,
      const std::vector<std::shared_ptr<EmbedJob>>& jobs,
      v1::ScoreResponse* response);

  const Options& options() const { return options_; }

 private:
  // The model and tower a request names.
  struct Target {
    Servable servable;
    std::shared_ptr<const Model> model;
    const Tower* tower = nullptr;
  };
  // Looks up the model (UNAVAILABLE / NOT_FOUND), checks the input count
  // against the limit, and finds the tower (INVALID_ARGUMENT).
  absl::StatusOr<Target> Resolve(absl::string_view model_name,
                                 absl::string_view tower_name, int count,
                                 absl::string_view what,
                                 CallStats* stats) const;

  const Options options_;
  const ModelRegistry* const registry_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_INFERENCE_REQUEST_HANDLER_H_
