#include "server/request_handler.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/status_macros.h"
#include "model/utf8.h"

namespace ctxembed {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Per-thread scratch, so the hot path reuses its buffers across calls.
struct Scratch {
  std::vector<std::string> tokens;
  Eigen::MatrixXf token_vectors;
  Eigen::VectorXf pooled;
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

absl::Status CheckCount(int count, int limit, absl::string_view what) {
  if (count == 0) {
    return absl::InvalidArgumentError(absl::StrCat("request has no ", what));
  }
  if (count > limit) {
    return absl::InvalidArgumentError(
        absl::StrCat("request has ", count, " ", what,
                     "; max_inputs_per_request is ", limit));
  }
  return absl::OkStatus();
}

// Names an input in error messages ("input 3", "pair 2 text b"); built only
// when an error needs it, so the hot path does not format strings.
struct InputLabel {
  absl::string_view kind;
  int index;
  absl::string_view suffix = "";
  std::string ToString() const { return absl::StrCat(kind, " ", index, suffix); }
};

absl::Status CheckUtf8(absl::string_view text, const InputLabel& label) {
  if (size_t bad = FindInvalidUtf8(text); bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        label.ToString(), " is not valid UTF-8 (byte ", bad, ")"));
  }
  return absl::OkStatus();
}

// Tokenizes `text` into *tokens, enforcing UTF-8 and max_tokens.
absl::Status TokenizeInput(const Model& model, absl::string_view text,
                           bool truncate, const InputLabel& label,
                           std::vector<std::string>* tokens) {
  CTXEMBED_RETURN_IF_ERROR(CheckUtf8(text, label));
  model.tokenizer().Tokenize(text, tokens);
  const size_t max = static_cast<size_t>(model.max_tokens());
  if (tokens->size() > max) {
    if (!truncate) {
      return absl::InvalidArgumentError(absl::StrCat(
          label.ToString(), " has ", tokens->size(),
          " tokens; max_tokens of model \"", model.name(), "\" is ", max,
          " (set truncate to cut it)"));
    }
    tokens->resize(max);
  }
  return absl::OkStatus();
}

absl::StatusOr<Pooling> ResolvePooling(const Model& model, v1::Pooling p) {
  switch (p) {
    case v1::POOLING_UNSPECIFIED:
      return model.pooling();
    case v1::POOLING_FASTTEXT:
      return Pooling::kFastText;
    case v1::POOLING_MEAN:
      return Pooling::kMean;
    case v1::POOLING_MAX:
      return Pooling::kMax;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown pooling value ", static_cast<int>(p)));
  }
}

void CopyTo(const float* v, int dim, v1::Vector* out) {
  out->mutable_values()->Assign(v, v + dim);
}

// Embeds one input into scratch.pooled; returns its token count.
absl::StatusOr<int64_t> EmbedInput(const Model& model, absl::string_view text,
                                   bool truncate, const InputLabel& label,
                                   Pooling pooling, bool normalize,
                                   Scratch& s) {
  CTXEMBED_RETURN_IF_ERROR(
      TokenizeInput(model, text, truncate, label, &s.tokens));
  model.EmbedTokens(s.tokens, &s.token_vectors);
  Pool(s.token_vectors, pooling, &s.pooled);
  if (normalize) NormalizeL2(s.pooled);
  return static_cast<int64_t>(s.tokens.size());
}

}  // namespace

absl::Status RequestHandler::Embed(const v1::EmbedRequest& request,
                                   v1::EmbedResponse* response,
                                   CallStats* stats) const {
  CTXEMBED_ASSIGN_OR_RETURN(auto model, registry_->Get(request.model()));
  stats->model = model->name();
  CTXEMBED_RETURN_IF_ERROR(CheckCount(request.inputs_size(),
                                      options_.max_inputs_per_request,
                                      "inputs"));
  CTXEMBED_ASSIGN_OR_RETURN(Pooling pooling,
                            ResolvePooling(*model, request.pooling()));
  const auto start = Clock::now();
  Scratch& s = ThreadScratch();
  response->mutable_embeddings()->Reserve(request.inputs_size());
  for (int i = 0; i < request.inputs_size(); ++i) {
    CTXEMBED_ASSIGN_OR_RETURN(
        int64_t n, EmbedInput(*model, request.inputs(i), request.truncate(),
                              InputLabel{"input", i}, pooling,
                              request.normalize(), s));
    stats->tokens += n;
    CopyTo(s.pooled.data(), model->dim(), response->add_embeddings());
  }
  stats->inference_seconds = SecondsSince(start);
  response->set_model(model->name());
  response->mutable_usage()->set_tokens(stats->tokens);
  response->set_request_id(request.request_id());
  return absl::OkStatus();
}

absl::Status RequestHandler::EmbedTokens(const v1::EmbedRequest& request,
                                         v1::EmbedTokensResponse* response,
                                         CallStats* stats) const {
  CTXEMBED_ASSIGN_OR_RETURN(auto model, registry_->Get(request.model()));
  stats->model = model->name();
  CTXEMBED_RETURN_IF_ERROR(CheckCount(request.inputs_size(),
                                      options_.max_inputs_per_request,
                                      "inputs"));
  const auto start = Clock::now();
  Scratch& s = ThreadScratch();
  for (int i = 0; i < request.inputs_size(); ++i) {
    CTXEMBED_RETURN_IF_ERROR(TokenizeInput(*model, request.inputs(i),
                                           request.truncate(),
                                           InputLabel{"input", i},
                                           &s.tokens));
    model->EmbedTokens(s.tokens, &s.token_vectors);
    v1::TokenEmbeddings* result = response->add_results();
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      auto column = s.token_vectors.col(static_cast<Eigen::Index>(t));
      if (request.normalize()) NormalizeL2(column);
      result->add_tokens(s.tokens[t]);
      CopyTo(column.data(), model->dim(), result->add_vectors());
    }
    stats->tokens += static_cast<int64_t>(s.tokens.size());
  }
  stats->inference_seconds = SecondsSince(start);
  response->set_model(model->name());
  response->mutable_usage()->set_tokens(stats->tokens);
  response->set_request_id(request.request_id());
  return absl::OkStatus();
}

absl::Status RequestHandler::Score(const v1::ScoreRequest& request,
                                   v1::ScoreResponse* response,
                                   CallStats* stats) const {
  CTXEMBED_ASSIGN_OR_RETURN(auto model, registry_->Get(request.model()));
  stats->model = model->name();
  CTXEMBED_RETURN_IF_ERROR(CheckCount(request.pairs_size(),
                                      options_.max_inputs_per_request,
                                      "pairs"));
  const auto start = Clock::now();
  Scratch& s = ThreadScratch();
  Eigen::VectorXf a;
  for (int i = 0; i < request.pairs_size(); ++i) {
    const v1::Pair& pair = request.pairs(i);
    CTXEMBED_ASSIGN_OR_RETURN(
        int64_t na, EmbedInput(*model, pair.a(), request.truncate(),
                               InputLabel{"pair", i, " text a"},
                               model->pooling(), true, s));
    a = s.pooled;
    CTXEMBED_ASSIGN_OR_RETURN(
        int64_t nb, EmbedInput(*model, pair.b(), request.truncate(),
                               InputLabel{"pair", i, " text b"},
                               model->pooling(), true, s));
    // Cosine of unit vectors; 0 when either text has no vector.
    response->add_scores(a.dot(s.pooled));
    stats->tokens += na + nb;
  }
  stats->inference_seconds = SecondsSince(start);
  response->set_model(model->name());
  response->mutable_usage()->set_tokens(stats->tokens);
  response->set_request_id(request.request_id());
  return absl::OkStatus();
}

absl::Status RequestHandler::Tokenize(const v1::TokenizeRequest& request,
                                      v1::TokenizeResponse* response,
                                      CallStats* stats) const {
  CTXEMBED_ASSIGN_OR_RETURN(auto model, registry_->Get(request.model()));
  stats->model = model->name();
  CTXEMBED_RETURN_IF_ERROR(CheckCount(request.inputs_size(),
                                      options_.max_inputs_per_request,
                                      "inputs"));
  Scratch& s = ThreadScratch();
  for (int i = 0; i < request.inputs_size(); ++i) {
    // Tokenize reports every token, even past max_tokens: it is how a client
    // learns how long its text is.
    CTXEMBED_RETURN_IF_ERROR(
        CheckUtf8(request.inputs(i), InputLabel{"input", i}));
    model->tokenizer().Tokenize(request.inputs(i), &s.tokens);
    auto* out = response->add_results()->mutable_tokens();
    for (std::string& t : s.tokens) out->Add(std::move(t));
    stats->tokens += static_cast<int64_t>(s.tokens.size());
  }
  response->set_model(model->name());
  return absl::OkStatus();
}

absl::Status RequestHandler::ListModels(const v1::ListModelsRequest&,
                                        v1::ListModelsResponse* response) const {
  const std::string default_name = registry_->default_name();
  for (const auto& model : registry_->List()) {
    v1::ModelInfo* info = response->add_models();
    info->set_name(model->name());
    info->set_dimension(model->dim());
    info->set_architecture(std::string(model->architecture()));
    info->set_max_tokens(model->max_tokens());
    info->set_pooling(std::string(PoolingName(model->pooling())));
    info->set_is_default(model->name() == default_name);
  }
  return absl::OkStatus();
}

}  // namespace ctxembed
