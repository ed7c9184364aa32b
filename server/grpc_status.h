// The one place where absl::Status becomes grpc::Status.
#ifndef CTXEMBED_SERVER_GRPC_STATUS_H_
#define CTXEMBED_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace ctxembed {

// Same code (the enums share their numbering) and message.
inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

// "OK", "INVALID_ARGUMENT", ...: the `code` label of request metrics.
inline std::string StatusCodeName(absl::StatusCode code) {
  return absl::StatusCodeToString(code);
}

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_GRPC_STATUS_H_
