// An embedding server: the gRPC service, health, reflection and metrics
// endpoint, with the lifecycle Kubernetes expects (NOT_SERVING until the
// models are warm, drain on shutdown).
#ifndef CTXEMBED_SERVER_SERVER_H_
#define CTXEMBED_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/model_registry.h"
#include "inference/model_versions.h"
#include "inference/request_handler.h"
#include "scheduling/scheduler.h"
#include "server/api_keys.h"
#include "server/connection_limit.h"
#include "server/embedder_service.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/tls.h"

namespace ctxembed {

// Thread-safe. Lifecycle: Start -> LoadModel (one or more) -> SetServing ->
// StartReloading -> ... -> Shutdown. The destructor shuts down if Shutdown
// was not called.
//
// Reload: each rescan loads a new version (and warms it up) beside the one
// serving, then swaps them at once; requests already holding the old version
// finish on it, and its batcher is drained and released once the last of
// them is done. A version that fails to load is refused (logged with the
// startup message, counted) and the previous one keeps serving.
class EmbeddingServer {
 public:
  struct Options {
    // host:port for gRPC; port 0 picks a free port (see grpc_port()).
    std::string grpc_address = "127.0.0.1:50051";
    // host:port of the Prometheus /metrics endpoint; empty serves none.
    std::string metrics_address = "127.0.0.1:9464";
    // Most inputs (or pairs) one request may carry.
    int max_inputs_per_request = 256;
    // Longest token in bytes; longer ones are cut (0: no bound).
    int max_token_bytes = 1024;
    // Largest request or response message, in bytes.
    int max_message_bytes = 64 << 20;
    // How long Shutdown lets queued and in-flight calls finish before
    // failing them with UNAVAILABLE.
    int64_t drain_timeout_ms = 10000;
    // How long Shutdown keeps serving with health NOT_SERVING before the
    // drain, so that clients which watch health (gRPC client-side health
    // checking) stop sending first.
    int64_t lame_duck_ms = 0;
    // Which versions of a versioned model directory are served: the
    // highest (kLatest), or every one (kAll; "name@version" picks one).
    enum class VersionPolicy { kLatest, kAll };
    VersionPolicy model_version_policy = VersionPolicy::kLatest;
    // How often the model directories are rescanned for new, changed or
    // removed versions (0: only on RequestReload).
    int64_t model_poll_interval_ms = 2000;
    // The HTTP/JSON front door (server/http_server.h): host:port, port 0
    // picks a free one (http_port()); empty serves none.
    std::string http_address;
    int64_t http_default_timeout_ms = 0;
    bool access_log = false;
    // The default of truncate (see RequestHandler::Options).
    bool auto_truncate = false;
    // Dynamic batching (per model); false runs every call as a batch of its
    // own, still through the scheduler (queue limits, deadlines, metrics).
    bool batching = true;
    // Batch and queue limits (see BatchQueue::Options).
    BatchQueue::Options batch;
    // Threads running batches, shared by all models; 0 means one per core.
    int num_batch_workers = 0;
    // Tokens admitted and not yet answered, across all models (see
    // Scheduler::Options); 0: no bound.
    int64_t max_inflight_tokens = 262144;
    // Refuse work that would wait longer than this (0: no bound but
    // batch.max_queue_sentences); see Batcher::Options.
    int64_t max_queue_wait_micros = 0;
    // Requests one EmbedStream may have unanswered at once.
    int max_stream_inflight = 8;
    // Close each client connection after this long (0: never), so clients
    // of a Kubernetes Service reconnect and spread over new pods; calls in
    // flight get max_connection_age_grace_ms to finish.
    int64_t max_connection_age_ms = 0;
    int64_t max_connection_age_grace_ms = 20000;
    // Close connections with no call for this long (0: never).
    int64_t max_connection_idle_ms = 0;
    // Most calls (streams) open at once on one connection (0: gRPC's
    // default, unbounded).
    int max_concurrent_streams = 0;
    // Client connections served at once, per port (0: no bound). gRPC:
    // connections holding calls (server/connection_limit.h); calls on
    // further connections get RESOURCE_EXHAUSTED. HTTP: open connections;
    // further ones get 503 and are closed.
    int max_connections = 1024;
    // TLS (and mTLS) on the gRPC port; plaintext unless a cert is named.
    TlsOptions tls;
    // host:port serving only grpc.health.v1.Health, in plaintext, for
    // probes that cannot speak TLS; "" serves none.
    std::string health_address;
    // A file of API keys (see ApiKeys); "" requires none. Health is always
    // open; metrics are on their own port.
    std::string api_keys_file;
    // With mutual TLS: client certificate subjects ("CN=a,O=b") or common
    // names allowed; empty allows every certificate the CA signed.
    std::vector<std::string> tls_allowed_subjects;
  };

  // Binds the ports and starts serving with health NOT_SERVING (calls get
  // UNAVAILABLE until a model is loaded). INVALID_ARGUMENT for bad options,
  // UNAVAILABLE if an address cannot be bound.
  static absl::StatusOr<std::unique_ptr<EmbeddingServer>> Start(
      const Options& options);
  ~EmbeddingServer();

  // Loads the model in `model_dir`, warms it up and makes it servable (the
  // first one loaded is the default). Returns the loader's error, which
  // names the file and the problem.
  // Loads a --model_dir entry: a model directory, or a versioned one (see
  // inference/model_versions.h), whose versions the policy selects; at
  // least one must load.
  absl::Status LoadModel(const std::string& model_dir);

  // Starts rescanning the model directories every model_poll_interval_ms
  // (and on RequestReload).
  void StartReloading();
  // Rescans at once (SIGHUP), without waiting for the rescan.
  void RequestReload();
  // Rescans now, on the calling thread; for tests (one rescan at a time).
  void ReloadNow();

  // Sets grpc.health.v1 status "" and "ctxembed.v1.Embedder".
  void SetServing(bool serving);

  // Health goes NOT_SERVING (then lame_duck_ms of serving as before), gRPC
  // stops taking calls (new ones get
  // UNAVAILABLE); the calls it took get up to drain_timeout_ms to finish
  // on the batchers, and what is left a little before that fails with
  // UNAVAILABLE. Idempotent; concurrent calls return when it is done.
  void Shutdown();

  int grpc_port() const { return grpc_port_; }
  // 0 when no HTTP front door is served.
  int http_port() const;
  // 0 when no separate health port is served.
  int health_port() const { return health_port_; }
  // 0 when no metrics endpoint is served.
  int metrics_port() const;
  prometheus::Registry& registry() { return *registry_; }

 private:
  EmbeddingServer(const Options& options, std::unique_ptr<ApiKeys> api_keys);

  // Start's steps: the gRPC port, the plaintext health port and the HTTP
  // port (the last two only when their address is set).
  absl::Status StartGrpc(
      const std::shared_ptr<grpc::ServerCredentials>& credentials);
  absl::Status StartHealth();
  absl::Status StartHttp();

  struct ModelSource;
  // Loads one version and warms it up, without publishing it.
  absl::StatusOr<Servable> LoadVersion(const std::string& dir, int64_t version);
  // Brings `source`'s served versions in line with its directory.
  absl::Status SyncSource(ModelSource& source, bool startup)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);
  // SyncSource's steps: loads a version new to `source`, refused if it
  // names the model differently from the source's other versions or (for
  // the source's first model) as another source's model; and publishes
  // `serve` as the source's versions, logging and counting what it
  // replaces.
  absl::StatusOr<Servable> LoadSourceVersion(const ModelSource& source,
                                             const ModelVersionDir& dir)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);
  void Publish(ModelSource& source, std::map<int64_t, Servable> serve)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);
  // Releases replaced versions no request holds any more.
  void ReleaseRetired() ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);
  void PollLoop();

  // Constant after Start.
  const Options options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  ServerMetrics metrics_;
  std::shared_ptr<Scheduler> scheduler_;  // shared by every model's batcher
  ModelRegistry models_;
  RequestHandler handler_;
  const std::unique_ptr<ApiKeys> api_keys_;  // null: no keys required
  ConnectionLimiter connections_;            // of the gRPC port
  EmbedderService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;  // --health_address
  std::unique_ptr<HttpServer> http_server_;      // --http_address
  int grpc_port_ = 0;
  std::atomic<bool> serving_{false};  // for HTTP /health
  int health_port_ = 0;

  // One load or rescan at a time.
  Mutex reload_mu_;
  std::vector<std::unique_ptr<ModelSource>> sources_
      ABSL_GUARDED_BY(reload_mu_);
  std::thread poller_;
  Mutex poll_mu_;
  CondVar poll_cv_;
  bool reload_requested_ ABSL_GUARDED_BY(poll_mu_) = false;
  bool stop_polling_ ABSL_GUARDED_BY(poll_mu_) = false;

  Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;  // Shutdown has begun
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;    // ... and has finished
  CondVar stopped_cv_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_SERVER_H_
