// The HTTP/1.1 front door (server/http_api.h for the routes): Boost.Beast on
// Asio, asynchronous, keep-alive, pipelined requests answered in order. The
// work runs as the gRPC calls' does: RequestHandler::Prepare, a job on the
// model's batcher (same queue, limits, deadlines, metrics), the answer
// written when the job ends. A client that disconnects while its request
// waits or runs cancels it.
#ifndef CTXEMBED_SERVER_HTTP_SERVER_H_
#define CTXEMBED_SERVER_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "inference/request_handler.h"
#include "server/api_keys.h"
#include "server/http_api.h"
#include "server/metrics.h"

namespace ctxembed {

class HttpServer {
 public:
  struct Options {
    std::string address = "127.0.0.1:8080";  // host:port; port 0 picks one
    int64_t max_body_bytes = 64 << 20;       // larger bodies: 413
    // Deadline of a request without an X-Request-Timeout-Ms header (0: none).
    int64_t default_timeout_ms = 0;
    // A connection that sends nothing (or not all of a request) for this
    // long is closed.
    int64_t idle_timeout_ms = 60000;
    // Connections open at once (0: no bound); a further one is answered
    // 503 with Retry-After and closed.
    int max_connections = 1024;
    // One JSON line per request on stderr (never the text).
    bool access_log = false;
    int max_inputs_per_request = 256;
    HttpApiOptions api;
  };
  struct Services {
    const RequestHandler* handler;
    ServerMetrics* metrics;
    ApiKeys* api_keys;              // null: no key needed
    std::function<bool()> serving;  // for /health
  };

  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const Options& options, const Services& services);
  ~HttpServer();  // Shutdown(0) if not shut down
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  // New requests get 503 from now on (and connections close after their
  // answer); the listener closes.
  void StopAccepting();
  // Waits up to `timeout` until no request is in flight; true if none is.
  bool WaitIdle(absl::Duration timeout);
  // StopAccepting, then waits up to `timeout` for the requests in flight to
  // be answered, and closes every connection.
  void Shutdown(absl::Duration timeout);

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_HTTP_SERVER_H_
