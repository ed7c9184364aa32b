// What every gRPC method does with its call's context and request.
#ifndef CTXEMBED_SERVER_GRPC_REQUESTS_H_
#define CTXEMBED_SERVER_GRPC_REQUESTS_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <type_traits>

#include "ctxembed/v1/embedder.pb.h"
#include "inference/request_handler.h"
#include "scheduling/clock.h"
#include "scheduling/task.h"

namespace ctxembed {

// The job's deadline, from the call's, on `clock` (the batcher's).
inline int64_t DeadlineMicros(const grpc::CallbackServerContext* context,
                              const Clock* clock) {
  const auto left = context->deadline() - std::chrono::system_clock::now();
  if (left > std::chrono::hours(24 * 365)) return Task::kNoDeadline;
  return clock->NowMicros() +
         std::chrono::duration_cast<std::chrono::microseconds>(left).count();
}

// --auto_truncate over gRPC: a proto3 bool cannot tell "unset" from false,
// so the server default turns truncation on.
template <typename Request>
void ApplyAutoTruncate(const RequestHandler& handler, Request* request) {
  if constexpr (!std::is_same_v<Request, v1::ListModelsRequest>) {
    if (handler.options().auto_truncate) request->set_truncate(true);
  }
}

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_GRPC_REQUESTS_H_
