#include "inference/request_handler.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "model/status_macros.h"
#include "model/utf8.h"
#include "scheduling/batcher.h"
#include "scheduling/mutex.h"

namespace ctxembed {
namespace {

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
  std::string ToString() const {
    return absl::StrCat(kind, " ", index, suffix);
  }
};

absl::Status CheckUtf8(absl::string_view text, const InputLabel& label) {
  if (size_t bad = FindInvalidUtf8(text); bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(label.ToString(), " is not valid UTF-8 (byte ", bad, ")"));
  }
  return absl::OkStatus();
}

size_t MaxTokenBytes(const RequestHandler::Options& options) {
  return options.max_token_bytes > 0
             ? static_cast<size_t>(options.max_token_bytes)
             : SIZE_MAX;
}

// Tokenizes `text` into *tokens, enforcing UTF-8, max_tokens (checked while
// tokenizing: no more than max_tokens tokens are ever built) and
// max_token_bytes (longer tokens are cut). Returns the text's full token
// count.
absl::StatusOr<size_t> TokenizeInput(const Model& model, absl::string_view text,
                                     bool truncate, size_t max_token_bytes,
                                     const InputLabel& label, TokenList* tokens,
                                     bool keep_last = false) {
  CTXEMBED_RETURN_IF_ERROR(CheckUtf8(text, label));
  const size_t max = static_cast<size_t>(model.max_tokens());
  const size_t count =
      model.tokenizer().Tokenize(text, tokens,
                                 {.max_tokens = max,
                                  .max_token_bytes = max_token_bytes,
                                  .keep_last = keep_last});
  if (count > max && !truncate) {
    return absl::InvalidArgumentError(absl::StrCat(
        label.ToString(), " has ", count, " tokens; max_tokens of model \"",
        model.name(), "\" is ", max, " (set truncate to cut it)"));
  }
  return count;
}

// Tokenizes every input into `sentences`; returns the token count.
absl::StatusOr<int64_t> TokenizeAll(
    const Model& model,
    const google::protobuf::RepeatedPtrField<std::string>& inputs,
    bool truncate, bool keep_last, size_t max_token_bytes,
    std::vector<TokenList>& sentences) {
  sentences.resize(inputs.size());
  int64_t tokens = 0;
  for (int i = 0; i < inputs.size(); ++i) {
    CTXEMBED_RETURN_IF_ERROR(
        TokenizeInput(model, inputs[i], truncate, max_token_bytes,
                      InputLabel{"input", i}, &sentences[i], keep_last)
            .status());
    tokens += static_cast<int64_t>(sentences[i].size());
  }
  return tokens;
}

absl::StatusOr<Pooling> ResolvePooling(const Model& model, const Tower& tower,
                                       v1::Pooling p) {
  switch (p) {
    case v1::POOLING_UNSPECIFIED:
      return tower.pooling();
    case v1::POOLING_FASTTEXT:
      return Pooling::kFastText;
    case v1::POOLING_MEAN:
      return Pooling::kMean;
    case v1::POOLING_MAX:
      return Pooling::kMax;
    case v1::POOLING_LAST:
      if (!tower.supports_last()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pooling LAST needs a recurrent encoder whose top module does not "
            "concatenate its input; model \"",
            model.name(), "\" is ", tower.architecture()));
      }
      return Pooling::kLast;
    case v1::POOLING_SIF:
      if (!tower.supports_sif()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pooling SIF needs word counts; model \"", model.name(), "\" has ",
            tower.word_vectors().format(),
            " word vectors without counts and no \"sif\" counts file"));
      }
      return Pooling::kSif;
    case v1::POOLING_CLS:
      return Pooling::kCls;
    case v1::POOLING_MEAN_SQRT_LEN:
      return Pooling::kMeanSqrtLen;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown pooling value ", static_cast<int>(p)));
  }
}

void CopyTo(const float* v, int dim, v1::Vector* out) {
  out->mutable_values()->Assign(v, v + dim);
}

}  // namespace

absl::StatusOr<RequestHandler::Target> RequestHandler::Resolve(
    absl::string_view model_name, absl::string_view tower_name, int count,
    absl::string_view what, CallStats* stats) const {
  Target target;
  CTXEMBED_ASSIGN_OR_RETURN(target.servable,
                            registry_->GetServable(model_name));
  target.model = target.servable.model;
  stats->model = target.model->name();
  CTXEMBED_RETURN_IF_ERROR(
      CheckCount(count, options_.max_inputs_per_request, what));
  CTXEMBED_ASSIGN_OR_RETURN(target.tower, target.model->FindTower(tower_name));
  return target;
}

absl::StatusOr<PreparedEmbed> RequestHandler::Prepare(
    const v1::EmbedRequest& request, EmbedJob::Kind kind,
    CallStats* stats) const {
  CTXEMBED_ASSIGN_OR_RETURN(
      Target t, Resolve(request.model(), request.tower(), request.inputs_size(),
                        "inputs", stats));
  PreparedEmbed prepared;
  prepared.servable = t.servable;
  prepared.spec.tower = t.tower;
  prepared.spec.kind = kind;
  if (kind == EmbedJob::Kind::kEmbed) {
    CTXEMBED_ASSIGN_OR_RETURN(
        prepared.spec.pooling,
        ResolvePooling(*t.model, *t.tower, request.pooling()));
  }
  CTXEMBED_ASSIGN_OR_RETURN(
      stats->tokens, TokenizeAll(*t.model, request.inputs(), request.truncate(),
                                 request.truncation_direction() ==
                                     v1::TRUNCATION_DIRECTION_LEFT,
                                 MaxTokenBytes(options_), prepared.sentences));
  // An answer that could never be sent is refused before any work: 4 bytes
  // a float is a lower bound of its encoded size.
  const int64_t floats =
      kind == EmbedJob::Kind::kEmbedTokens
          ? stats->tokens * t.tower->token_dim()
          : static_cast<int64_t>(request.inputs_size()) * t.tower->output_dim();
  if (options_.max_response_bytes > 0 &&
      4 * floats > options_.max_response_bytes) {
    return absl::OutOfRangeError(absl::StrCat(
        "the answer would hold ", floats, " floats (at least ", 4 * floats,
        " bytes); max_message_bytes is ", options_.max_response_bytes,
        ": send fewer inputs per request"));
  }
  return prepared;
}

void RequestHandler::FillEmbedResponse(const v1::EmbedRequest& request,
                                       const Servable& servable, EmbedJob& job,
                                       v1::EmbedResponse* response) {
  const Model& model = *servable.model;
  response->set_model_version(servable.version);
  Eigen::MatrixXf& vectors = job.vectors();
  int64_t tokens = 0;
  response->mutable_embeddings()->Reserve(job.size());
  for (int i = 0; i < job.size(); ++i) {
    if (request.normalize()) NormalizeL2(vectors.col(i));
    CopyTo(vectors.col(i).data(), static_cast<int>(vectors.rows()),
           response->add_embeddings());
    tokens += job.length(i);
  }
  response->set_model(model.name());
  response->mutable_usage()->set_tokens(tokens);
  response->set_request_id(request.request_id());
}

void RequestHandler::FillTokensResponse(const v1::EmbedRequest& request,
                                        const Servable& servable, EmbedJob& job,
                                        v1::EmbedTokensResponse* response) {
  const Model& model = *servable.model;
  response->set_model_version(servable.version);
  int64_t tokens = 0;
  for (int i = 0; i < job.size(); ++i) {
    v1::TokenEmbeddings* result = response->add_results();
    Eigen::MatrixXf& vectors = job.token_vectors()[i];
    const TokenList& sentence = job.sentence(i);
    for (int k = 0; k < job.length(i); ++k) {
      auto column = vectors.col(k);
      if (request.normalize()) NormalizeL2(column);
      result->add_tokens(sentence[k]);
      CopyTo(column.data(), static_cast<int>(vectors.rows()),
             result->add_vectors());
    }
    tokens += job.length(i);
  }
  response->set_model(model.name());
  response->mutable_usage()->set_tokens(tokens);
  response->set_request_id(request.request_id());
}

namespace {

// What a job told its waiting caller.
struct Outcome {
  Notification done;
  absl::Status status;
};

// Runs `jobs` on `batcher` (inline, on this thread, without one) and waits
// for all of them; the first error, or OK.
absl::Status RunAndWait(const std::vector<std::shared_ptr<EmbedJob>>& jobs,
                        std::vector<Outcome>& outcomes, Batcher* batcher) {
  for (const auto& job : jobs) {
    if (batcher == nullptr) {
      RunJobInline(job);
      continue;
    }
    absl::Status submitted = batcher->Submit(job);
    if (!submitted.ok()) job->Fail(submitted);
  }
  absl::Status status;
  for (Outcome& o : outcomes) {
    o.done.WaitForNotification();
    if (status.ok()) status = o.status;
  }
  return status;
}

// Jobs for `specs` and `sentences` (one job each) whose outcomes land in
// *outcomes.
std::vector<std::shared_ptr<EmbedJob>> MakeWaitedJobs(
    const std::vector<EmbedJob::Spec>& specs,
    std::vector<std::vector<TokenList>>& sentences,
    std::vector<Outcome>* outcomes) {
  std::vector<std::shared_ptr<EmbedJob>> jobs;
  for (size_t k = 0; k < specs.size(); ++k) {
    Outcome* o = &(*outcomes)[k];
    jobs.push_back(std::make_shared<EmbedJob>(
        specs[k], std::move(sentences[k]), Task::kNoDeadline,
        [o](EmbedJob&, const absl::Status& status) {
          o->status = status;
          o->done.Notify();
        }));
  }
  return jobs;
}

}  // namespace

namespace {

// Runs a prepared Embed / EmbedTokens request as one job and waits for it.
absl::StatusOr<std::shared_ptr<EmbedJob>> RunPrepared(PreparedEmbed& prepared) {
  std::vector<std::vector<TokenList>> sentences;
  sentences.push_back(std::move(prepared.sentences));
  std::vector<Outcome> outcomes(1);
  auto jobs = MakeWaitedJobs({prepared.spec}, sentences, &outcomes);
  CTXEMBED_RETURN_IF_ERROR(
      RunAndWait(jobs, outcomes, prepared.servable.batcher.get()));
  return jobs[0];
}

}  // namespace

absl::Status RequestHandler::Embed(const v1::EmbedRequest& request,
                                   v1::EmbedResponse* response,
                                   CallStats* stats) const {
  CTXEMBED_ASSIGN_OR_RETURN(PreparedEmbed prepared,
                            Prepare(request, EmbedJob::Kind::kEmbed, stats));
  CTXEMBED_ASSIGN_OR_RETURN(std::shared_ptr<EmbedJob> job,
                            RunPrepared(prepared));
  FillEmbedResponse(request, prepared.servable, *job, response);
  return absl::OkStatus();
}

absl::Status RequestHandler::EmbedTokens(const v1::EmbedRequest& request,
                                         v1::EmbedTokensResponse* response,
                                         CallStats* stats) const {
  CTXEMBED_ASSIGN_OR_RETURN(
      PreparedEmbed prepared,
      Prepare(request, EmbedJob::Kind::kEmbedTokens, stats));
  CTXEMBED_ASSIGN_OR_RETURN(std::shared_ptr<EmbedJob> job,
                            RunPrepared(prepared));
  FillTokensResponse(request, prepared.servable, *job, response);
  return absl::OkStatus();
}

absl::StatusOr<PreparedScore> RequestHandler::PrepareScore(
    const v1::ScoreRequest& request, CallStats* stats) const {
  CTXEMBED_ASSIGN_OR_RETURN(
      Target t,
      Resolve(request.model(), "", request.pairs_size(), "pairs", stats));
  const Model& model = *t.model;
  const int n = request.pairs_size();
  // Texts a, then texts b: one job for a single encoder, one per tower for
  // a dual encoder (a through enc0, b through enc1).
  std::vector<TokenList> all(2 * n);
  for (int i = 0; i < n; ++i) {
    const v1::Pair& pair = request.pairs(i);
    CTXEMBED_RETURN_IF_ERROR(TokenizeInput(model, pair.a(), request.truncate(),
                                           MaxTokenBytes(options_),
                                           InputLabel{"pair", i, " text a"},
                                           &all[i])
                                 .status());
    CTXEMBED_RETURN_IF_ERROR(TokenizeInput(model, pair.b(), request.truncate(),
                                           MaxTokenBytes(options_),
                                           InputLabel{"pair", i, " text b"},
                                           &all[n + i])
                                 .status());
    stats->tokens += static_cast<int64_t>(all[i].size() + all[n + i].size());
  }
  PreparedScore prepared;
  prepared.servable = t.servable;
  const Tower& a = model.tower(0);
  prepared.specs.push_back({&a, a.pooling(), EmbedJob::Kind::kEmbed});
  if (model.num_towers() == 1) {
    prepared.sentences.push_back(std::move(all));
  } else {
    const Tower& b = model.tower(1);
    prepared.specs.push_back({&b, b.pooling(), EmbedJob::Kind::kEmbed});
    prepared.sentences.emplace_back(std::make_move_iterator(all.begin()),
                                    std::make_move_iterator(all.begin() + n));
    prepared.sentences.emplace_back(std::make_move_iterator(all.begin() + n),
                                    std::make_move_iterator(all.end()));
  }
  return prepared;
}

void RequestHandler::FillScoreResponse(
    const v1::ScoreRequest& request, const Servable& servable,
    const std::vector<std::shared_ptr<EmbedJob>>& jobs,
    v1::ScoreResponse* response) {
  const Model& model = *servable.model;
  response->set_model_version(servable.version);
  const int n = request.pairs_size();
  Eigen::MatrixXf a, b;
  if (jobs.size() == 1) {
    a = jobs[0]->vectors().leftCols(n);
    b = jobs[0]->vectors().rightCols(n);
  } else {
    a = jobs[0]->vectors();
    b = jobs[1]->vectors();
  }
  if (const Comparator* comparator = model.comparator()) {
    for (float score : comparator->Score(a, b)) response->add_scores(score);
  } else {
    for (int i = 0; i < n; ++i) {
      // The cosine; 0 when either text has no vector.
      NormalizeL2(a.col(i));
      NormalizeL2(b.col(i));
      response->add_scores(a.col(i).dot(b.col(i)));
    }
  }
  int64_t tokens = 0;
  for (const auto& job : jobs) {
    for (int i = 0; i < job->size(); ++i) tokens += job->length(i);
  }
  response->set_model(model.name());
  response->mutable_usage()->set_tokens(tokens);
  response->set_request_id(request.request_id());
}

absl::Status RequestHandler::Score(const v1::ScoreRequest& request,
                                   v1::ScoreResponse* response,
                                   CallStats* stats) const {
  CTXEMBED_ASSIGN_OR_RETURN(PreparedScore prepared,
                            PrepareScore(request, stats));
  std::vector<Outcome> outcomes(prepared.specs.size());
  auto jobs = MakeWaitedJobs(prepared.specs, prepared.sentences, &outcomes);
  CTXEMBED_RETURN_IF_ERROR(
      RunAndWait(jobs, outcomes, prepared.servable.batcher.get()));
  FillScoreResponse(request, prepared.servable, jobs, response);
  return absl::OkStatus();
}

absl::Status RequestHandler::Tokenize(const v1::TokenizeRequest& request,
                                      v1::TokenizeResponse* response,
                                      CallStats* stats) const {
  CTXEMBED_ASSIGN_OR_RETURN(auto model, registry_->Get(request.model()));
  stats->model = model->name();
  CTXEMBED_RETURN_IF_ERROR(CheckCount(
      request.inputs_size(), options_.max_inputs_per_request, "inputs"));
  TokenList tokens;
  for (int i = 0; i < request.inputs_size(); ++i) {
    // The limits of Embed: an input over max_tokens is refused unless the
    // request truncates; token_count tells the whole text's length either
    // way.
    CTXEMBED_ASSIGN_OR_RETURN(
        const size_t count,
        TokenizeInput(
            *model, request.inputs(i), request.truncate(),
            MaxTokenBytes(options_), InputLabel{"input", i}, &tokens,
            request.truncation_direction() == v1::TRUNCATION_DIRECTION_LEFT));
    v1::TokenList* result = response->add_results();
    for (std::string& token : tokens) result->add_tokens(std::move(token));
    result->set_token_count(static_cast<int64_t>(count));
    stats->tokens += static_cast<int64_t>(tokens.size());
  }
  response->set_model(model->name());
  return absl::OkStatus();
}

absl::Status RequestHandler::ListModels(
    const v1::ListModelsRequest&, v1::ListModelsResponse* response) const {
  const std::string default_name = registry_->default_name();
  bool default_seen = false;
  std::vector<Servable> servables = registry_->List();
  const size_t available = servables.size();
  for (Servable& s : registry_->Unloading()) servables.push_back(std::move(s));
  for (size_t i = 0; i < servables.size(); ++i) {
    const Servable& servable = servables[i];
    const Model* model = servable.model.get();
    v1::ModelInfo* info = response->add_models();
    info->set_version(servable.version);
    info->set_state(i < available ? v1::MODEL_STATE_AVAILABLE
                                  : v1::MODEL_STATE_UNLOADING);
    info->set_name(model->name());
    info->set_dimension(model->dim());
    info->set_architecture(model->architecture());
    info->set_max_tokens(model->max_tokens());
    info->set_pooling(std::string(PoolingName(model->pooling())));
    // The default model's highest version answers requests that name none.
    info->set_is_default(!default_seen && i < available &&
                         model->name() == default_name);
    default_seen = default_seen || model->name() == default_name;
    info->set_token_dimension(model->token_dim());
    if (model->num_towers() > 1) {
      for (int t = 0; t < model->num_towers(); ++t) {
        info->add_towers(model->tower(t).name());
      }
    }
    info->set_has_comparator(model->comparator() != nullptr);
  }
  return absl::OkStatus();
}

}  // namespace ctxembed
