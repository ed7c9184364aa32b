#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "inference/model_versions.h"
#include "model/kernels.h"
#include "model/status_macros.h"
#include "scheduling/clock.h"
#include "server/log.h"

namespace ctxembed {
namespace {

constexpr char kServiceName[] = "ctxembed.v1.Embedder";

absl::Status ValidateOptions(const EmbeddingServer::Options& o) {
  if (o.grpc_address.empty()) {
    return absl::InvalidArgumentError("grpc_address is empty");
  }
  if (o.max_inputs_per_request < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_inputs_per_request is ",
                                                   o.max_inputs_per_request,
                                                   "; it must be at least 1"));
  }
  if (o.max_connection_idle_ms < 0 || o.max_concurrent_streams < 0 ||
      o.max_connections < 0) {
    return absl::InvalidArgumentError(
        "max_connection_idle_ms, max_concurrent_streams and max_connections "
        "must not be negative");
  }
  if (o.max_token_bytes < 0) {
    return absl::InvalidArgumentError("max_token_bytes is negative");
  }
  if (o.max_message_bytes < 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_bytes is ", o.max_message_bytes,
                     "; it must be at least 1024"));
  }
  if (o.drain_timeout_ms < 0) {
    return absl::InvalidArgumentError("drain_timeout_ms is negative");
  }
  if (o.lame_duck_ms < 0) {
    return absl::InvalidArgumentError("lame_duck_ms is negative");
  }
  if (!o.tls_allowed_subjects.empty() && o.tls.client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_allowed_subjects needs --tls_client_ca_file (mutual TLS)");
  }
  if (o.max_stream_inflight < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_stream_inflight is ",
                                                   o.max_stream_inflight,
                                                   "; it must be at least 1"));
  }
  return absl::OkStatus();
}

// The load log's note on a reduced-precision model: what runs it here.
const char* PrecisionNote(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return "";
    case Precision::kBf16:
      return Bf16GemmIfSupported() != nullptr
                 ? "; bf16 weights, bf16 kernel (AVX512_BF16)"
                 : "; bf16 weights on the fp32 kernel (this CPU has no "
                   "AVX512_BF16)";
    case Precision::kInt8:
      return Int8GemmIfSupported(DefaultKernels()) != nullptr
                 ? "; int8 weights, int8 kernel (AVX512_VNNI)"
                 : "; int8 weights on the fp32 kernel (no AVX512_VNNI at "
                   "this --cpu_isa level)";
  }
  return "";
}

}  // namespace

EmbeddingServer::EmbeddingServer(const Options& options,
                                 std::unique_ptr<ApiKeys> api_keys)
    : options_(options),
      registry_(std::make_shared<prometheus::Registry>()),
      metrics_(registry_.get()),
      handler_({.max_inputs_per_request = options.max_inputs_per_request,
                .max_token_bytes = options.max_token_bytes,
                .max_response_bytes = options.max_message_bytes,
                .auto_truncate = options.auto_truncate},
               &models_),
      api_keys_(std::move(api_keys)),
      connections_(options.max_connections),
      service_(&handler_, &metrics_, options.max_stream_inflight,
               api_keys_.get(), options.tls_allowed_subjects, &connections_) {}

absl::StatusOr<std::unique_ptr<EmbeddingServer>> EmbeddingServer::Start(
    const Options& options) {
  CTXEMBED_RETURN_IF_ERROR(ValidateOptions(options));
  CTXEMBED_ASSIGN_OR_RETURN(
      std::shared_ptr<grpc::ServerCredentials> credentials,
      ServerCredentials(options.tls));
  std::unique_ptr<ApiKeys> api_keys;
  if (!options.api_keys_file.empty()) {
    absl::StatusOr<std::unique_ptr<ApiKeys>> keys =
        ApiKeys::Load(options.api_keys_file);
    if (!keys.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--api_keys_file: ", keys.status().message()));
    }
    api_keys = *std::move(keys);
  }
  std::unique_ptr<EmbeddingServer> s(
      new EmbeddingServer(options, std::move(api_keys)));
  CTXEMBED_ASSIGN_OR_RETURN(
      s->scheduler_,
      Scheduler::Create({.num_workers = options.num_batch_workers,
                         .max_inflight_tokens = options.max_inflight_tokens}));
  if (!options.metrics_address.empty()) {
    try {
      s->exposer_ =
          std::make_unique<prometheus::Exposer>(options.metrics_address);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(
          "cannot serve metrics on ", options.metrics_address, ": ", e.what()));
    }
    s->exposer_->RegisterCollectable(s->registry_);
  }
  CTXEMBED_RETURN_IF_ERROR(s->StartGrpc(credentials));
  absl::Status started = s->StartHealth();
  if (started.ok()) started = s->StartHttp();
  if (!started.ok()) {
    // Closes the ports that did start (no call has been served yet).
    s->server_->Shutdown();
    if (s->health_server_ != nullptr) s->health_server_->Shutdown();
    return started;
  }
  s->SetServing(false);
  return s;
}

absl::Status EmbeddingServer::StartGrpc(
    const std::shared_ptr<grpc::ServerCredentials>& credentials) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.grpc_address, credentials, &grpc_port_);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  // Compressed requests are refused (UNIMPLEMENTED, before any inflating):
  // a 50 KB gzip body can inflate to gigabytes before the size limit is
  // applied, and embedding requests are small text that gains little.
  builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_GZIP, false);
  builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_DEFLATE, false);
  // Behind a Service, long-lived HTTP/2 connections pin clients to pods;
  // closing them after a while (with a grace for calls in flight) makes
  // clients reconnect and spread over new pods.
  if (options_.max_connection_age_ms > 0) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_MS,
        static_cast<int>(options_.max_connection_age_ms));
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
        static_cast<int>(options_.max_connection_age_grace_ms));
  }
  if (options_.max_connection_idle_ms > 0) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_IDLE_MS,
        static_cast<int>(options_.max_connection_idle_ms));
  }
  if (options_.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               options_.max_concurrent_streams);
  }
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(
      ConnectionLimitInterceptors(&connections_, kServiceName));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(&service_);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve gRPC on ", options_.grpc_address));
  }
  return absl::OkStatus();
}

absl::Status EmbeddingServer::StartHealth() {
  if (options_.health_address.empty()) return absl::OkStatus();
  // Only the standard health service (enabled for every server by
  // StartGrpc), in plaintext: Kubernetes' gRPC probes cannot speak TLS.
  grpc::ServerBuilder health;
  health.AddListeningPort(options_.health_address,
                          grpc::InsecureServerCredentials(), &health_port_);
  health_server_ = health.BuildAndStart();
  if (health_server_ == nullptr || health_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve health checks on ",
                                               options_.health_address));
  }
  return absl::OkStatus();
}

absl::Status EmbeddingServer::StartHttp() {
  if (options_.http_address.empty()) return absl::OkStatus();
  HttpServer::Options http;
  http.address = options_.http_address;
  http.max_body_bytes = options_.max_message_bytes;
  http.default_timeout_ms = options_.http_default_timeout_ms;
  if (options_.max_connection_idle_ms > 0) {
    http.idle_timeout_ms = options_.max_connection_idle_ms;
  }
  http.access_log = options_.access_log;
  http.max_connections = options_.max_connections;
  http.max_inputs_per_request = options_.max_inputs_per_request;
  http.api.auto_truncate = options_.auto_truncate;
  CTXEMBED_ASSIGN_OR_RETURN(
      http_server_,
      HttpServer::Start(http, {&handler_, &metrics_, api_keys_.get(),
                               [this] { return serving_.load(); }}));
  return absl::OkStatus();
}

int EmbeddingServer::http_port() const {
  return http_server_ == nullptr ? 0 : http_server_->port();
}

EmbeddingServer::~EmbeddingServer() { Shutdown(); }

// A --model_dir entry and the versions of it being served.
struct EmbeddingServer::ModelSource {
  std::string path;
  bool versioned = false;
  std::string name;                       // empty until a version has loaded
  std::map<int64_t, Servable> served;     // by version
  std::map<int64_t, std::string> failed;  // version -> fingerprint that failed
};

absl::StatusOr<Servable> EmbeddingServer::LoadVersion(const std::string& dir,
                                                      int64_t version) {
  const auto start = std::chrono::steady_clock::now();
  CTXEMBED_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model,
                            Model::Load(dir));
  // A message limit below one answer for one input of max_tokens tokens
  // would refuse every long input: refused here instead.
  for (int i = 0; i < model->num_towers(); ++i) {
    const int64_t bytes = 4 * static_cast<int64_t>(model->max_tokens()) *
                          model->tower(i).token_dim();
    if (bytes > options_.max_message_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--max_message_bytes=", options_.max_message_bytes,
          " is smaller than one EmbedTokens answer of model \"", model->name(),
          "\" (max_tokens ", model->max_tokens(), " x ",
          model->tower(i).token_dim(), " floats = ", bytes, " bytes)"));
    }
  }
  Batcher::Options b;
  b.queue = options_.batch;
  b.max_queue_wait_micros = options_.max_queue_wait_micros;
  if (!options_.batching) {
    // Each request runs on its own, through the same queue, admission and
    // deadlines as batched ones.
    b.queue.one_task_per_batch = true;
    b.queue.max_queue_delay_micros = 0;
  }
  CTXEMBED_ASSIGN_OR_RETURN(
      std::unique_ptr<Batcher> batcher,
      Batcher::Create(b, RunEmbedBatch, metrics_.ForModel(model->name()),
                      scheduler_));
  Servable servable{model, std::move(batcher), version};
  // Warm-up, before the version is published: one pass through every code
  // path a request takes, on a registry of its own.
  ModelRegistry staging;
  CTXEMBED_RETURN_IF_ERROR(staging.Add(servable));
  RequestHandler warm_handler(handler_.options(), &staging);
  v1::EmbedRequest warm;
  warm.add_inputs("warm up the model");
  warm.set_truncate(true);
  v1::EmbedResponse response;
  CallStats stats;
  CTXEMBED_RETURN_IF_ERROR(warm_handler.Embed(warm, &response, &stats));
  const double seconds = SecondsSince(start);
  metrics_.SetQueueCapacity(model->name(), b.queue.max_queue_sentences);
  metrics_.RecordModelLoaded(model->name(), std::string(model->architecture()),
                             model->dim(), seconds);
  LogInfo("loaded model \"", model->name(), "\"",
          version == 0 ? "" : absl::StrCat(" version ", version), " from ", dir,
          ": ", model->architecture(), ", dim ", model->dim(), ", ",
          model->word_vectors().vocab_size(), " words (",
          model->word_vectors().format(), "), in ", seconds, " s",
          PrecisionNote(model->config().precision));
  return servable;
}

absl::Status EmbeddingServer::LoadModel(const std::string& model_dir) {
  MutexLock lock(&reload_mu_);
  auto source = std::make_unique<ModelSource>();
  source->path = model_dir;
  CTXEMBED_RETURN_IF_ERROR(SyncSource(*source, /*startup=*/true));
  sources_.push_back(std::move(source));
  return absl::OkStatus();
}

absl::Status EmbeddingServer::SyncSource(ModelSource& source, bool startup) {
  absl::StatusOr<ModelVersionList> listed =
      ListModelVersions(source.path, !startup && source.versioned);
  if (!listed.ok()) {
    if (startup) return listed.status();
    listed = ModelVersionList{source.versioned, {}};  // the entry is gone
  }
  if (startup) source.versioned = listed->versioned;
  if (!source.versioned && !startup) return absl::OkStatus();  // loaded once
  const bool all =
      options_.model_version_policy == Options::VersionPolicy::kAll;
  std::map<int64_t, Servable> serve;
  absl::Status first_error;
  std::vector<std::string> refusals;
  // Highest first: under "latest", the highest version that loads.
  for (auto it = listed->versions.rbegin(); it != listed->versions.rend();
       ++it) {
    const ModelVersionDir& dir = *it;
    if (auto s = source.served.find(dir.version); s != source.served.end()) {
      serve[dir.version] = s->second;
    } else {
      const std::string fingerprint = DirectoryFingerprint(dir.path);
      auto f = source.failed.find(dir.version);
      if (f != source.failed.end() && f->second == fingerprint) continue;
      absl::StatusOr<Servable> loaded = LoadSourceVersion(source, dir);
      if (!loaded.ok()) {
        source.failed[dir.version] = fingerprint;
        if (first_error.ok()) first_error = loaded.status();
        const std::string name =
            source.name.empty() ? source.path : source.name;
        metrics_.RecordReload(name, "failed");
        refusals.push_back(
            absl::StrCat("model ", source.path, " version ", dir.version,
                         " refused: ", loaded.status().message()));
        continue;
      }
      source.failed.erase(dir.version);
      source.name = loaded->model->name();
      metrics_.RecordReload(source.name, "loaded");
      serve[dir.version] = *std::move(loaded);
    }
    if (!all) break;
  }
  // Fingerprints of versions that are gone are forgotten.
  for (auto f = source.failed.begin(); f != source.failed.end();) {
    const bool present = std::any_of(
        listed->versions.begin(), listed->versions.end(),
        [&](const ModelVersionDir& d) { return d.version == f->first; });
    f = present ? std::next(f) : source.failed.erase(f);
  }
  if (startup && serve.empty()) {  // the caller reports it, in one line
    if (!first_error.ok()) return first_error;
    return absl::NotFoundError(
        absl::StrCat(source.path, ": no version directories"));
  }
  for (const std::string& refusal : refusals) LogError(refusal);
  const bool unchanged =
      serve.size() == source.served.size() &&
      std::equal(serve.begin(), serve.end(), source.served.begin(),
                 [](const auto& a, const auto& b) {
                   return a.first == b.first &&
                          a.second.model == b.second.model;
                 });
  if (unchanged) return absl::OkStatus();
  if (source.name.empty()) return absl::OkStatus();  // nothing ever loaded
  Publish(source, std::move(serve));
  return absl::OkStatus();
}

absl::StatusOr<Servable> EmbeddingServer::LoadSourceVersion(
    const ModelSource& source, const ModelVersionDir& dir) {
  CTXEMBED_ASSIGN_OR_RETURN(Servable loaded,
                            LoadVersion(dir.path, dir.version));
  const std::string& name = loaded.model->name();
  if (!source.name.empty() && name != source.name) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir.path, "/config.json: names the model \"", name,
                     "\"; the other versions in ", source.path, " name it \"",
                     source.name, "\""));
  }
  if (source.name.empty()) {
    // A name another entry serves is refused.
    for (const auto& other : sources_) {
      if (other.get() != &source && other->name == name) {
        return absl::AlreadyExistsError(absl::StrCat(
            "a model named \"", name, "\" is loaded (from ", other->path, ")"));
      }
    }
  }
  return loaded;
}

void EmbeddingServer::Publish(ModelSource& source,
                              std::map<int64_t, Servable> serve) {
  std::vector<Servable> publish;
  for (const auto& [version, servable] : serve) publish.push_back(servable);
  if (publish.empty()) {
    LogInfo("model \"", source.name, "\" has no versions left in ", source.path,
            "; unloading it");
  }
  const int retired = models_.Publish(source.name, publish);
  for (const auto& [version, old] : source.served) {
    if (serve.count(version) == 0 || serve.at(version).model != old.model) {
      LogInfo("model \"", source.name, "\" version ", version,
              " replaced; released when its last request is done");
    }
  }
  for (int i = 0; i < retired; ++i) {
    metrics_.RecordReload(source.name, "unloaded");
  }
  source.served = std::move(serve);
  metrics_.SetModelVersion(
      source.name, source.served.empty() ? -1 : source.served.rbegin()->first);
}

void EmbeddingServer::ReleaseRetired() {
  std::vector<Servable> unused = models_.TakeUnused();
  for (Servable& old : unused) {
    // Nothing new reaches it; drain what is queued, then release it.
    if (old.batcher != nullptr) {
      old.batcher->Shutdown(options_.drain_timeout_ms * 1000);
    }
    LogInfo("model \"", old.model->name(), "\" version ", old.version,
            " released");
  }
  if (unused.empty()) return;
  unused.clear();
  // The versions' weights went back to the allocator; glibc keeps freed
  // heap pages mapped unless asked to return them.
  malloc_trim(0);
}

void EmbeddingServer::ReloadNow() {
  MutexLock lock(&reload_mu_);
  for (auto& source : sources_) {
    SyncSource(*source, /*startup=*/false).IgnoreError();
  }
  ReleaseRetired();
}

void EmbeddingServer::RequestReload() {
  MutexLock lock(&poll_mu_);
  reload_requested_ = true;
  poll_cv_.SignalAll();
}

void EmbeddingServer::StartReloading() {
  MutexLock lock(&poll_mu_);
  if (poller_.joinable() || stop_polling_) return;
  poller_ = std::thread([this] { PollLoop(); });
}

void EmbeddingServer::PollLoop() {
  const int64_t interval = options_.model_poll_interval_ms;
  auto next_scan = std::chrono::steady_clock::now();
  while (true) {
    bool scan = false;
    {
      MutexLock lock(&poll_mu_);
      // Retired versions are looked at often; directories at the interval.
      const absl::Duration tick = absl::Milliseconds(
          interval > 0 ? std::min<int64_t>(interval, 50) : 50);
      if (!stop_polling_ && !reload_requested_) {
        poll_cv_.WaitWithTimeout(&poll_mu_, tick);
      }
      if (stop_polling_) return;
      scan = reload_requested_ ||
             (interval > 0 && std::chrono::steady_clock::now() >= next_scan);
      reload_requested_ = false;
    }
    if (scan) {
      ReloadNow();
      next_scan = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(interval);
    } else {
      MutexLock lock(&reload_mu_);
      ReleaseRetired();
    }
  }
}

void EmbeddingServer::SetServing(bool serving) {
  serving_.store(serving);
  for (grpc::Server* server : {server_.get(), health_server_.get()}) {
    if (server == nullptr) continue;
    grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
    if (health == nullptr) continue;
    health->SetServingStatus("", serving);
    health->SetServingStatus(kServiceName, serving);
  }
}

void EmbeddingServer::Shutdown() {
  {
    MutexLock lock(&mu_);
    if (server_ == nullptr) return;
    if (shut_down_) {  // another call is shutting down: wait until it has
      while (!stopped_) stopped_cv_.Wait(&mu_);
      return;
    }
    shut_down_ = true;
  }
  {
    MutexLock lock(&poll_mu_);
    stop_polling_ = true;
    poll_cv_.SignalAll();
  }
  if (poller_.joinable()) poller_.join();
  serving_.store(false);
  // After this, health answers NOT_SERVING and ignores further updates.
  if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
  if (health_server_ != nullptr) {
    if (auto* health = health_server_->GetHealthCheckService()) {
      health->Shutdown();
    }
  }
  // Calls that reach gRPC in the instant it starts to stop are reset
  // (CANCELLED) by gRPC itself; clients that watch health have stopped
  // sending by the end of the lame duck.
  if (options_.lame_duck_ms > 0) {
    absl::SleepFor(absl::Milliseconds(options_.lame_duck_ms));
  }
  // gRPC stops taking calls first (GOAWAY: clients send new calls
  // elsewhere, or get UNAVAILABLE) while the batchers go on serving the
  // calls it already took, so those end with their answers. Batchers that
  // stopped first would answer every call still arriving with an instant
  // UNAVAILABLE, and a client retrying in a loop would then send so many
  // calls in the instant gRPC takes to say GOAWAY that some would land in
  // it: gRPC resets those (CANCELLED).
  const auto drain = std::chrono::milliseconds(options_.drain_timeout_ms);
  const auto start = std::chrono::steady_clock::now();
  // Calls still running a little before gRPC's deadline (which resets
  // them) are failed with UNAVAILABLE by the batchers instead.
  const auto margin = std::min<std::chrono::steady_clock::duration>(
      drain / 10, std::chrono::milliseconds(500));
  // HTTP requests arriving from now on get 503; those already taken run.
  if (http_server_ != nullptr) http_server_->StopAccepting();
  Notification grpc_stopped;
  std::thread grpc_stop([this, drain, &grpc_stopped] {
    server_->Shutdown(std::chrono::system_clock::now() + drain);
    server_->Wait();
    grpc_stopped.Notify();
  });
  const auto left_before_margin =
      start + drain - margin - std::chrono::steady_clock::now();
  grpc_stopped.WaitForNotificationWithTimeout(absl::FromChrono(
      std::max(left_before_margin, std::chrono::steady_clock::duration{})));
  // HTTP requests already taken get the same time as gRPC calls.
  if (http_server_ != nullptr) {
    http_server_->WaitIdle(absl::FromChrono(
        std::max(start + drain - margin - std::chrono::steady_clock::now(),
                 std::chrono::steady_clock::duration{})));
  }
  // Refuse new work; what is still queued fails with UNAVAILABLE now (all
  // batchers at once, on the shared workers).
  std::vector<std::thread> drains;
  // Served versions and those replaced but still draining.
  std::vector<std::shared_ptr<Batcher>> batchers = models_.Batchers();
  for (const auto& batcher : batchers) {
    drains.emplace_back([batcher] { batcher->Shutdown(0); });
  }
  for (auto& t : drains) t.join();
  grpc_stop.join();
  // Every job has ended; what is left is writing the answers.
  if (http_server_ != nullptr) {
    http_server_->Shutdown(absl::FromChrono(std::max(
        start + drain - std::chrono::steady_clock::now(),
        std::chrono::steady_clock::duration(std::chrono::milliseconds(100)))));
  }
  if (health_server_ != nullptr) {
    health_server_->Shutdown(std::chrono::system_clock::now());
    health_server_->Wait();
  }
  MutexLock lock(&mu_);
  stopped_ = true;
  stopped_cv_.SignalAll();
}

int EmbeddingServer::metrics_port() const {
  if (exposer_ == nullptr) return 0;
  std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace ctxembed
