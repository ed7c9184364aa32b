// The one place where absl::Status becomes grpc::Status.
#ifndef CTXEMBED_SERVER_GRPC_STATUS_H_
#define CTXEMBED_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "model/utf8.h"

namespace ctxembed {

// Longest status message sent, in bytes. Messages can quote what a client
// sent (an unknown model name); unbounded, a long one overflowed the
// client's 8 KB metadata limit and the call failed with RESOURCE_EXHAUSTED,
// which says "retry" about a call that can never succeed.
inline constexpr size_t kMaxStatusMessageBytes = 1024;

// Same code (the enums share their numbering) and message, cut to
// kMaxStatusMessageBytes (at a UTF-8 character boundary, then "...").
inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string message(status.message());
  if (message.size() > kMaxStatusMessageBytes) {
    message = std::string(Utf8Prefix(message, kMaxStatusMessageBytes - 3));
    message += "...";
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message);
}

// "OK", "INVALID_ARGUMENT", ...: the `code` label of request metrics.
inline std::string StatusCodeName(absl::StatusCode code) {
  return absl::StatusCodeToString(code);
}

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_GRPC_STATUS_H_
