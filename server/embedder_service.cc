#include "server/embedder_service.h"

#include <algorithm>
#include <chrono>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "scheduling/batcher.h"
#include "scheduling/clock.h"
#include "server/embed_stream.h"
#include "server/grpc_requests.h"
#include "server/grpc_status.h"
#include "server/job_group.h"
#include "server/log.h"
#include "server/request_parser.h"

namespace ctxembed {
namespace {

using SteadyClock = std::chrono::steady_clock;

// One unary call whose work runs as a JobGroup on a model's batcher (one
// job, or two for a dual-encoder Score). Deletes itself when gRPC is done
// with it.
//
// Lifetime: the call ends (Finish) only in the group's done callback, once
// every job has ended, so no job callback can touch a deleted call; a
// failed job cancels its siblings, so the call ends promptly.
template <typename Request, typename Response>
class BatchedCall : public grpc::ServerUnaryReactor {
 public:
  BatchedCall(Method method, ServerMetrics* metrics, grpc::ByteBuffer* out)
      : method_(method),
        metrics_(metrics),
        out_(out),
        start_(SteadyClock::now()) {
    metrics_->AddInflight(1);
  }

  // Ends the call with `status` (not OK), before any job started.
  void Reject(const absl::Status& status, const CallStats& stats) {
    if (status.code() == absl::StatusCode::kInvalidArgument &&
        !stats.model.empty()) {
      metrics_->RecordRejected(stats.model, "invalid");
    }
    End(status);
  }

  // Makes one job per spec, submits them to the servable's batcher, and from
  // then on the jobs end the call. The caller must not touch the call
  // afterwards (gRPC runs OnDone only after the method handler returns, so
  // the handler itself may still return it).
  void Run(const std::vector<EmbedJob::Spec>& specs,
           std::vector<std::vector<TokenList>> sentences, Servable servable,
           int64_t deadline_micros) {
    // The version that answers (no batcher: the callback must not own it).
    const Servable version{servable.model, nullptr, servable.version};
    auto group = JobGroup::Create(
        servable.batcher.get(), specs, std::move(sentences), deadline_micros,
        [this, version](const absl::Status& status,
                        const std::vector<std::shared_ptr<EmbedJob>>& jobs) {
          OnJobsDone(status, version, jobs);
        });
    {
      MutexLock lock(&mu_);
      // Held until the call is deleted: the batcher (and the model version)
      // outlive every use the group makes of them, also after a reload.
      servable_ = std::move(servable);
      group_ = group;
    }
    group->Submit();
  }

  void OnCancel() override {
    std::shared_ptr<JobGroup> group;
    {
      MutexLock lock(&mu_);
      group = group_;
    }
    if (group != nullptr) group->Cancel();
  }

  void OnDone() override { delete this; }

  Request request;

 private:
  // Runs on the thread that ended the last job.
  void OnJobsDone(const absl::Status& status, const Servable& version,
                  const std::vector<std::shared_ptr<EmbedJob>>& jobs) {
    if (status.ok()) {
      Response response;
      if constexpr (std::is_same_v<Response, v1::EmbedResponse>) {
        RequestHandler::FillEmbedResponse(request, version, *jobs[0],
                                          &response);
      } else if constexpr (std::is_same_v<Response, v1::EmbedTokensResponse>) {
        RequestHandler::FillTokensResponse(request, version, *jobs[0],
                                           &response);
      } else {
        RequestHandler::FillScoreResponse(request, version, jobs, &response);
      }
      metrics_->RecordTokens(version.model->name(), response.usage().tokens());
      SerializeResponse(response, out_);
    }
    End(status);
  }

  void End(const absl::Status& status) {
    metrics_->RecordRequest(method_, status.code(), SecondsSince(start_));
    metrics_->AddInflight(-1);
    Finish(ToGrpcStatus(status));  // no lock held
  }

  const Method method_;
  ServerMetrics* const metrics_;
  grpc::ByteBuffer* const out_;
  const SteadyClock::time_point start_;
  Mutex mu_;
  Servable servable_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<JobGroup> group_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::Status EmbedderService::Authenticate(
    grpc::CallbackServerContext* context) {
  if (connections_ != nullptr && !connections_->Holds(context->peer())) {
    metrics_->RecordRejected("", "connections");
    return absl::ResourceExhaustedError(
        absl::StrCat("the server has calls in flight on --max_connections=",
                     connections_->max_connections(),
                     " client connections; retry later or reuse a connection"));
  }
  if (!allowed_subjects_.empty()) {
    std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
    bool allowed = false;
    std::string subject;
    for (const char* property :
         {GRPC_X509_SUBJECT_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME}) {
      for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
        const std::string v(value.data(), value.size());
        if (subject.empty()) subject = v;
        allowed = allowed ||
                  std::find(allowed_subjects_.begin(), allowed_subjects_.end(),
                            v) != allowed_subjects_.end();
      }
    }
    if (!allowed) {
      metrics_->RecordRejected("", "forbidden");
      return absl::PermissionDeniedError(
          absl::StrCat("client certificate subject \"", subject,
                       "\" is not in --tls_allowed_subjects"));
    }
  }
  if (api_keys_ == nullptr) return absl::OkStatus();
  std::optional<absl::string_view> authorization;
  const auto& metadata = context->client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    authorization = absl::string_view(it->second.data(), it->second.size());
  }
  absl::Status status = api_keys_->Check(authorization);
  if (!status.ok()) metrics_->RecordRejected("", "unauthenticated");
  return status;
}

template <typename Request, typename Response, typename Call>
grpc::ServerUnaryReactor* EmbedderService::ServeUnary(
    Method method, grpc::CallbackServerContext* context,
    const grpc::ByteBuffer* in, grpc::ByteBuffer* out, Call call) {
  const auto start = SteadyClock::now();
  metrics_->AddInflight(1);
  Request request;
  Response response;
  CallStats stats;
  absl::Status status = Authenticate(context);
  if (status.ok()) status = ParseRequest(*in, &request);
  if (status.ok()) ApplyAutoTruncate(*handler_, &request);
  if (status.ok()) status = call(request, &response, &stats);
  if (status.ok()) {
    SerializeResponse(response, out);
  } else if (status.code() == absl::StatusCode::kInternal) {
    LogError(MethodName(method), ": ", status.ToString());
  }
  metrics_->RecordRequest(method, status.code(), SecondsSince(start));
  metrics_->AddInflight(-1);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

template <typename Response>
grpc::ServerUnaryReactor* EmbedderService::ServeBatched(
    Method method, EmbedJob::Kind kind, grpc::CallbackServerContext* context,
    const grpc::ByteBuffer* in, grpc::ByteBuffer* out) {
  auto* call =
      new BatchedCall<v1::EmbedRequest, Response>(method, metrics_, out);
  CallStats stats;
  absl::Status parsed = Authenticate(context);
  if (parsed.ok()) parsed = ParseRequest(*in, &call->request);
  if (parsed.ok()) ApplyAutoTruncate(*handler_, &call->request);
  absl::StatusOr<PreparedEmbed> prepared =
      parsed.ok() ? handler_->Prepare(call->request, kind, &stats)
                  : absl::StatusOr<PreparedEmbed>(parsed);
  if (!prepared.ok()) {
    call->Reject(prepared.status(), stats);
    return call;
  }
  const Clock* clock = prepared->servable.batcher->clock();
  std::vector<std::vector<TokenList>> sentences;
  sentences.push_back(std::move(prepared->sentences));
  call->Run({prepared->spec}, std::move(sentences), prepared->servable,
            DeadlineMicros(context, clock));
  return call;
}

grpc::ServerUnaryReactor* EmbedderService::Embed(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeBatched<v1::EmbedResponse>(Method::kEmbed, EmbedJob::Kind::kEmbed,
                                         context, request, response);
}

grpc::ServerUnaryReactor* EmbedderService::EmbedTokens(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeBatched<v1::EmbedTokensResponse>(Method::kEmbedTokens,
                                               EmbedJob::Kind::kEmbedTokens,
                                               context, request, response);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
EmbedderService::EmbedStream(grpc::CallbackServerContext* context) {
  if (absl::Status status = Authenticate(context); !status.ok()) {
    return RefuseEmbedStream(status, metrics_);
  }
  return StartEmbedStream(handler_, metrics_, max_stream_inflight_, context);
}

grpc::ServerUnaryReactor* EmbedderService::Score(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  auto* call = new BatchedCall<v1::ScoreRequest, v1::ScoreResponse>(
      Method::kScore, metrics_, response);
  CallStats stats;
  absl::Status parsed = Authenticate(context);
  if (parsed.ok()) parsed = ParseRequest(*request, &call->request);
  if (parsed.ok()) ApplyAutoTruncate(*handler_, &call->request);
  absl::StatusOr<PreparedScore> prepared =
      parsed.ok() ? handler_->PrepareScore(call->request, &stats)
                  : absl::StatusOr<PreparedScore>(parsed);
  if (!prepared.ok()) {
    call->Reject(prepared.status(), stats);
    return call;
  }
  const Clock* clock = prepared->servable.batcher->clock();
  call->Run(prepared->specs, std::move(prepared->sentences), prepared->servable,
            DeadlineMicros(context, clock));
  return call;
}

grpc::ServerUnaryReactor* EmbedderService::Tokenize(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeUnary<v1::TokenizeRequest, v1::TokenizeResponse>(
      Method::kTokenize, context, request, response,
      [this](const auto& req, auto* resp, CallStats* stats) {
        return handler_->Tokenize(req, resp, stats);
      });
}

grpc::ServerUnaryReactor* EmbedderService::ListModels(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeUnary<v1::ListModelsRequest, v1::ListModelsResponse>(
      Method::kListModels, context, request, response,
      [this](const auto& req, auto* resp, CallStats*) {
        return handler_->ListModels(req, resp);
      });
}

}  // namespace ctxembed
