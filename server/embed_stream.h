// EmbedStream, the bidirectional streaming method: its reactor, one per
// call (server/embed_stream.cc).
#ifndef CTXEMBED_SERVER_EMBED_STREAM_H_
#define CTXEMBED_SERVER_EMBED_STREAM_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "inference/request_handler.h"
#include "server/metrics.h"

namespace ctxembed {

// A reactor serving the call: requests are read while fewer than
// `max_inflight` are unanswered; each is answered in order. It deletes
// itself when done.
grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StartEmbedStream(
    const RequestHandler* handler, ServerMetrics* metrics, int max_inflight,
    grpc::CallbackServerContext* context);

// A reactor that ends the call at once with `status` (not OK), for a call
// refused before it starts.
grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* RefuseEmbedStream(
    const absl::Status& status, ServerMetrics* metrics);

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_EMBED_STREAM_H_
