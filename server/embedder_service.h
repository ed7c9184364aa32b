// The gRPC face of ctxembed.v1.Embedder: bytes in, RequestHandler, bytes out.
#ifndef CTXEMBED_SERVER_EMBEDDER_SERVICE_H_
#define CTXEMBED_SERVER_EMBEDDER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "ctxembed/v1/embedder.grpc.pb.h"
#include "inference/request_handler.h"
#include "server/api_keys.h"
#include "server/connection_limit.h"
#include "server/metrics.h"

namespace ctxembed {

// Every method is registered "raw" (ByteBuffer in and out) so that requests
// that do not parse, such as texts that are not UTF-8, get INVALID_ARGUMENT
// naming the input instead of gRPC's bare UNIMPLEMENTED.
using RawEmbedderService = v1::Embedder::WithRawCallbackMethod_Embed<
    v1::Embedder::WithRawCallbackMethod_EmbedTokens<
        v1::Embedder::WithRawCallbackMethod_EmbedStream<
            v1::Embedder::WithRawCallbackMethod_Score<
                v1::Embedder::WithRawCallbackMethod_Tokenize<
                    v1::Embedder::WithRawCallbackMethod_ListModels<
                        v1::Embedder::Service>>>>>>;

// Thread-safe; `handler` and `metrics` must outlive it. Embed, EmbedTokens
// and EmbedStream hand their sentences to the model's batcher and finish
// from its worker threads (inline on gRPC's threads for a model without
// one); Score, Tokenize and ListModels run on gRPC's callback threads.
class EmbedderService final : public RawEmbedderService {
 public:
  // With `api_keys` (may be null: no keys needed), every call must carry a
  // valid key; `api_keys` must outlive the service.
  // With `allowed_subjects` (mutual TLS only), the client certificate's
  // subject (RFC 2253, "CN=a,O=b") or common name must be one of them.
  // With `connections` (may be null), a call whose connection holds no
  // place in it (server/connection_limit.h) is refused.
  EmbedderService(const RequestHandler* handler, ServerMetrics* metrics,
                  int max_stream_inflight, ApiKeys* api_keys = nullptr,
                  std::vector<std::string> allowed_subjects = {},
                  const ConnectionLimiter* connections = nullptr)
      : handler_(handler),
        metrics_(metrics),
        max_stream_inflight_(max_stream_inflight),
        api_keys_(api_keys),
        allowed_subjects_(std::move(allowed_subjects)),
        connections_(connections) {}

  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* EmbedTokens(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* EmbedStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

 private:
  // Parses, runs `call(request, response, stats)`, records metrics and
  // finishes the RPC.
  template <typename Request, typename Response, typename Call>
  grpc::ServerUnaryReactor* ServeUnary(Method method,
                                       grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* in,
                                       grpc::ByteBuffer* out, Call call);

  template <typename Response>
  grpc::ServerUnaryReactor* ServeBatched(Method method, EmbedJob::Kind kind,
                                         grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* in,
                                         grpc::ByteBuffer* out);

  // OK; RESOURCE_EXHAUSTED (counted as "connections") for a call on a
  // connection over --max_connections; PERMISSION_DENIED (counted as
  // "forbidden") for a client certificate whose subject is not allowed;
  // UNAUTHENTICATED (counted) if API keys are on and the call has no valid one.
  absl::Status Authenticate(grpc::CallbackServerContext* context);

  const RequestHandler* const handler_;
  ServerMetrics* const metrics_;
  const int max_stream_inflight_;
  ApiKeys* const api_keys_;
  const std::vector<std::string> allowed_subjects_;
  const ConnectionLimiter* const connections_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_EMBEDDER_SERVICE_H_
