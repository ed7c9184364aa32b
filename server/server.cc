#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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
  if (o.max_connection_idle_ms < 0 || o.max_concurrent_streams < 0) {
    return absl::InvalidArgumentError(
        "max_connection_idle_ms and max_concurrent_streams must not be "
        "negative");
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

}  // namespace

EmbeddingServer::EmbeddingServer(const Options& options,
                                 std::unique_ptr<ApiKeys> api_keys)
    : options_(options),
      registry_(std::make_shared<prometheus::Registry>()),
      metrics_(registry_.get()),
      handler_({.max_inputs_per_request = options.max_inputs_per_request,
                .max_token_bytes = options.max_token_bytes,
                .max_response_bytes = options.max_message_bytes},
               &models_),
      api_keys_(std::move(api_keys)),
      service_(&handler_, &metrics_, options.max_stream_inflight,
               api_keys_.get(), options.tls_allowed_subjects) {}

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
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.grpc_address, credentials, &s->grpc_port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  // Compressed requests are refused (UNIMPLEMENTED, before any inflating):
  // a 50 KB gzip body can inflate to gigabytes before the size limit is
  // applied, and embedding requests are small text that gains little.
  builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_GZIP, false);
  builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_DEFLATE, false);
  // Behind a Service, long-lived HTTP/2 connections pin clients to pods;
  // closing them after a while (with a grace for calls in flight) makes
  // clients reconnect and spread over new pods.
  if (options.max_connection_age_ms > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               static_cast<int>(options.max_connection_age_ms));
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
        static_cast<int>(options.max_connection_age_grace_ms));
  }
  if (options.max_connection_idle_ms > 0) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_IDLE_MS,
        static_cast<int>(options.max_connection_idle_ms));
  }
  if (options.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               options.max_concurrent_streams);
  }
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(&s->service_);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve gRPC on ", options.grpc_address));
  }
  if (!options.health_address.empty()) {
    // Only the standard health service (enabled above for every server),
    // in plaintext: Kubernetes' gRPC probes cannot speak TLS.
    grpc::ServerBuilder health;
    health.AddListeningPort(options.health_address,
                            grpc::InsecureServerCredentials(),
                            &s->health_port_);
    s->health_server_ = health.BuildAndStart();
    if (s->health_server_ == nullptr || s->health_port_ == 0) {
      s->server_->Shutdown();
      return absl::UnavailableError(absl::StrCat(
          "cannot serve health checks on ", options.health_address));
    }
  }
  s->SetServing(false);
  return s;
}

EmbeddingServer::~EmbeddingServer() { Shutdown(); }

absl::Status EmbeddingServer::LoadModel(const std::string& model_dir) {
  const auto start = std::chrono::steady_clock::now();
  CTXEMBED_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model,
                            Model::Load(model_dir));
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
  metrics_.SetQueueCapacity(model->name(), b.queue.max_queue_sentences);
  CTXEMBED_RETURN_IF_ERROR(models_.Add(model, std::move(batcher)));
  // Warm-up: one pass through every code path a request takes.
  v1::EmbedRequest warm;
  warm.add_inputs("warm up the model");
  warm.set_truncate(true);
  warm.set_model(model->name());
  v1::EmbedResponse response;
  CallStats stats;
  CTXEMBED_RETURN_IF_ERROR(handler_.Embed(warm, &response, &stats));
  const double seconds = SecondsSince(start);
  metrics_.RecordModelLoaded(model->name(), std::string(model->architecture()),
                             model->dim(), seconds);
  LogInfo("loaded model \"", model->name(), "\" from ", model_dir, ": ",
          model->architecture(), ", dim ", model->dim(), ", ",
          model->word_vectors().vocab_size(), " words (",
          model->word_vectors().format(), "), in ", seconds, " s",
          model->config().precision == Precision::kBf16
              ? (Bf16GemmIfSupported() != nullptr
                     ? "; bf16 weights, bf16 kernel (AVX512_BF16)"
                     : "; bf16 weights on the fp32 kernel (this CPU has no "
                       "AVX512_BF16)")
              : "");
  return absl::OkStatus();
}

void EmbeddingServer::SetServing(bool serving) {
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
  // Refuse new work; what is still queued fails with UNAVAILABLE now (all
  // batchers at once, on the shared workers).
  std::vector<std::thread> drains;
  for (const auto& batcher : models_.Batchers()) {
    drains.emplace_back([batcher] { batcher->Shutdown(0); });
  }
  for (auto& t : drains) t.join();
  grpc_stop.join();
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
