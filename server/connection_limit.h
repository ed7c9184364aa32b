// --max_connections: a bound on the client connections that hold calls.
//
// gRPC 1.51 neither reports nor limits the connections it accepts (no
// connection callback, no "max allowed incoming connections" argument), so
// the gRPC port counts what it can see: each call's peer address (one per
// TCP connection, "ipv4:10.0.0.7:51234"). A connection counts while it has
// a call in flight; a call arriving on a further connection when the bound
// is reached is refused with RESOURCE_EXHAUSTED before any work. Idle
// connections hold no call and are closed by --max_connection_idle_ms;
// --max_concurrent_streams bounds the calls on one connection. The HTTP port
// counts its open connections directly (server/http_server.h).
#ifndef CTXEMBED_SERVER_CONNECTION_LIMIT_H_
#define CTXEMBED_SERVER_CONNECTION_LIMIT_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "scheduling/mutex.h"

namespace ctxembed {

// Thread-safe.
class ConnectionLimiter {
 public:
  // `max_connections` 0: no bound (connections are still counted).
  explicit ConnectionLimiter(int max_connections)
      : max_connections_(max_connections) {}

  // One call from `peer` begins. False (and nothing recorded) when `peer`
  // holds no call and max_connections peers already do.
  bool Enter(const std::string& peer);
  // A call Enter accepted ends.
  void Leave(const std::string& peer);
  // True while `peer` holds a call Enter accepted.
  bool Holds(const std::string& peer) const;
  // Peers holding calls.
  int connections() const;
  int max_connections() const { return max_connections_; }

 private:
  const int max_connections_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
};

// Registers every call of the service named `service` (its other services,
// health checks and reflection, are never refused: a kubelet probe must get
// through a full server) with `limiter` for as long as the call lives.
// The handler then asks `limiter->Holds(context->peer())`.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ConnectionLimitInterceptors(ConnectionLimiter* limiter, std::string service);

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_CONNECTION_LIMIT_H_
