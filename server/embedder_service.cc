#include "server/embedder_service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "server/grpc_status.h"
#include "server/log.h"
#include "server/request_parser.h"

namespace ctxembed {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs one Embed for a stream message and records its metrics.
absl::Status RunOne(const RequestHandler& handler, ServerMetrics& metrics,
                    Method method, const grpc::ByteBuffer& in,
                    v1::EmbedResponse* response) {
  const auto start = Clock::now();
  v1::EmbedRequest request;
  CallStats stats;
  absl::Status status = ParseRequest(in, &request);
  if (status.ok()) status = handler.Embed(request, response, &stats);
  if (status.ok()) {
    metrics.RecordInference(stats.model, stats.inference_seconds, stats.tokens);
  } else if (!request.request_id().empty()) {
    status = absl::Status(status.code(), absl::StrCat("request_id ",
                                                      request.request_id(),
                                                      ": ", status.message()));
  }
  metrics.RecordRequest(method, status.code(), SecondsSince(start));
  return status;
}

// One EmbedStream call: reads a request, answers it, reads the next. One
// message is in flight at a time, so a fast sender cannot make the server
// buffer without bound; responses come back in request order.
class EmbedStreamReactor
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  EmbedStreamReactor(const RequestHandler* handler, ServerMetrics* metrics)
      : handler_(handler), metrics_(metrics) {
    metrics_->AddInflight(1);
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed (or went away)
      Finish(grpc::Status::OK);
      return;
    }
    v1::EmbedResponse response;
    absl::Status status =
        RunOne(*handler_, *metrics_, Method::kEmbedStream, in_, &response);
    if (!status.ok()) {
      Finish(ToGrpcStatus(status));
      return;
    }
    SerializeResponse(response, &out_);
    StartWrite(&out_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                          "the stream closed while a response was sent"));
      return;
    }
    StartRead(&in_);
  }

  void OnDone() override {
    metrics_->AddInflight(-1);
    delete this;
  }

 private:
  const RequestHandler* const handler_;
  ServerMetrics* const metrics_;
  grpc::ByteBuffer in_;
  grpc::ByteBuffer out_;
};

}  // namespace

template <typename Request, typename Response, typename Call>
grpc::ServerUnaryReactor* EmbedderService::ServeUnary(
    Method method, grpc::CallbackServerContext* context,
    const grpc::ByteBuffer* in, grpc::ByteBuffer* out, Call call) {
  const auto start = Clock::now();
  metrics_->AddInflight(1);
  Request request;
  Response response;
  CallStats stats;
  absl::Status status = ParseRequest(*in, &request);
  if (status.ok()) status = call(request, &response, &stats);
  if (status.ok()) {
    SerializeResponse(response, out);
    if (!stats.model.empty() && method != Method::kTokenize) {
      metrics_->RecordInference(stats.model, stats.inference_seconds,
                                stats.tokens);
    }
  } else if (status.code() == absl::StatusCode::kInternal) {
    LogError(MethodName(method), ": ", status.ToString());
  }
  metrics_->RecordRequest(method, status.code(), SecondsSince(start));
  metrics_->AddInflight(-1);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* EmbedderService::Embed(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeUnary<v1::EmbedRequest, v1::EmbedResponse>(
      Method::kEmbed, context, request, response,
      [this](const auto& req, auto* resp, CallStats* stats) {
        return handler_->Embed(req, resp, stats);
      });
}

grpc::ServerUnaryReactor* EmbedderService::EmbedTokens(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeUnary<v1::EmbedRequest, v1::EmbedTokensResponse>(
      Method::kEmbedTokens, context, request, response,
      [this](const auto& req, auto* resp, CallStats* stats) {
        return handler_->EmbedTokens(req, resp, stats);
      });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
EmbedderService::EmbedStream(grpc::CallbackServerContext* context) {
  return new EmbedStreamReactor(handler_, metrics_);
}

grpc::ServerUnaryReactor* EmbedderService::Score(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeUnary<v1::ScoreRequest, v1::ScoreResponse>(
      Method::kScore, context, request, response,
      [this](const auto& req, auto* resp, CallStats* stats) {
        return handler_->Score(req, resp, stats);
      });
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
