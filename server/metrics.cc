#include "server/metrics.h"

#include "model/cpu_info.h"
#include "model/kernels.h"
#include "server/grpc_status.h"

namespace ctxembed {

const char* MethodName(Method method) {
  switch (method) {
    case Method::kEmbed:
      return "Embed";
    case Method::kEmbedTokens:
      return "EmbedTokens";
    case Method::kEmbedStream:
      return "EmbedStream";
    case Method::kScore:
      return "Score";
    case Method::kTokenize:
      return "Tokenize";
    case Method::kListModels:
      return "ListModels";
    case Method::kHttpOpenAiEmbeddings:
      return "http_v1_embeddings";
    case Method::kHttpEmbed:
      return "http_embed";
    case Method::kHttpEmbedAll:
      return "http_embed_all";
    case Method::kHttpTokenize:
      return "http_tokenize";
    case Method::kHttpInfo:
      return "http_info";
    case Method::kHttpHealth:
      return "http_health";
    case Method::kHttpSimilarity:
      return "http_similarity";
  }
  return "unknown";
}

prometheus::Histogram::BucketBoundaries ServerMetrics::LatencyBuckets() {
  return {50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
          50e-3, 100e-3, 250e-3, 500e-3, 1.0,  2.5,    5.0,  10.0};
}

ServerMetrics::ServerMetrics(prometheus::Registry* registry) {
  requests_ = &prometheus::BuildCounter()
                   .Name("ctxembed_requests_total")
                   .Help(
                       "Finished RPCs (stream messages for EmbedStream) by "
                       "method and gRPC status code.")
                   .Register(*registry);
  request_duration_ = &prometheus::BuildHistogram()
                           .Name("ctxembed_request_duration_seconds")
                           .Help("Server-side RPC latency in seconds.")
                           .Register(*registry);
  inference_duration_ = &prometheus::BuildHistogram()
                             .Name("ctxembed_inference_duration_seconds")
                             .Help(
                                 "Time spent computing vectors in the "
                                 "model, in seconds.")
                             .Register(*registry);
  input_tokens_ = &prometheus::BuildCounter()
                       .Name("ctxembed_input_tokens_total")
                       .Help("Tokens processed by the model.")
                       .Register(*registry);
  auto& inflight = prometheus::BuildGauge()
                       .Name("ctxembed_inflight_requests")
                       .Help("RPCs being served right now.")
                       .Register(*registry);
  inflight_ = &inflight.Add({});
  prometheus::BuildGauge()
      .Name("ctxembed_build_info")
      .Help(
          "1, labelled with the x86-64 level of the encoder kernels in use "
          "(isa, chosen at startup), the highest level this CPU supports "
          "(cpu_isa) and the level the rest of the build targets "
          "(build_isa).")
      .Register(*registry)
      .Add({{"isa", KernelsLevelName(DefaultKernels())},
            {"cpu_isa", CpuIsa()},
            {"build_isa", BuildIsa()}})
      .Set(1);
  model_info_ = &prometheus::BuildGauge()
                     .Name("ctxembed_model_info")
                     .Help("1 for each loaded model, with its metadata.")
                     .Register(*registry);
  model_load_seconds_ = &prometheus::BuildGauge()
                             .Name("ctxembed_model_load_seconds")
                             .Help(
                                 "Seconds it took to load and warm up the "
                                 "model.")
                             .Register(*registry);
  queue_duration_ = &prometheus::BuildHistogram()
                         .Name("ctxembed_queue_duration_seconds")
                         .Help("Time a sentence waited for its batch.")
                         .Register(*registry);
  batch_size_ = &prometheus::BuildHistogram()
                     .Name("ctxembed_batch_size")
                     .Help("Sentences per batch.")
                     .Register(*registry);
  batch_tokens_ = &prometheus::BuildHistogram()
                       .Name("ctxembed_batch_tokens")
                       .Help(
                           "Padded tokens per batch (longest sentence x "
                           "sentences).")
                       .Register(*registry);
  padding_ratio_ = &prometheus::BuildHistogram()
                        .Name("ctxembed_padding_ratio")
                        .Help(
                            "Share of a batch's padded tokens that are "
                            "padding.")
                        .Register(*registry);
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("ctxembed_queue_depth")
                      .Help("Sentences waiting for a batch.")
                      .Register(*registry);
  queue_capacity_ = &prometheus::BuildGauge()
                         .Name("ctxembed_queue_capacity")
                         .Help(
                             "Most sentences that may wait for a batch "
                             "(max_queue_sentences).")
                         .Register(*registry);
  rejected_ = &prometheus::BuildCounter()
                   .Name("ctxembed_rejected_total")
                   .Help(
                       "Requests refused or dropped, by reason "
                       "(overloaded, deadline, cancelled, invalid, "
                       "unavailable).")
                   .Register(*registry);
  model_reloads_ = &prometheus::BuildCounter()
                        .Name("ctxembed_model_reloads_total")
                        .Help(
                            "Model versions loaded, refused (failed) or "
                            "unloaded after the server started its first.")
                        .Register(*registry);
  model_version_ = &prometheus::BuildGauge()
                        .Name("ctxembed_model_version")
                        .Help(
                            "The version of each model being served (the "
                            "highest when several are; 0: no versions).")
                        .Register(*registry);
  for (int m = 0; m < kNumMethods; ++m) {
    const char* name = MethodName(static_cast<Method>(m));
    ok_requests_[m] = &requests_->Add({{"method", name}, {"code", "OK"}});
    durations_[m] =
        &request_duration_->Add({{"method", name}}, LatencyBuckets());
  }
}

void ServerMetrics::RecordRequest(Method method, absl::StatusCode code,
                                  double seconds) {
  const int m = static_cast<int>(method);
  if (code == absl::StatusCode::kOk) {
    ok_requests_[m]->Increment();
  } else {
    // Rare; Family::Add finds the existing series under its own lock.
    requests_
        ->Add({{"method", MethodName(method)}, {"code", StatusCodeName(code)}})
        .Increment();
  }
  durations_[m]->Observe(seconds);
}

void ServerMetrics::ModelObserver::OnBatch(int sentences, int padded_tokens,
                                           int real_tokens, double seconds) {
  series_->inference->Observe(seconds);
  series_->batch_size->Observe(sentences);
  series_->batch_tokens->Observe(padded_tokens);
  series_->padding->Observe(
      padded_tokens > 0 ? 1.0 - static_cast<double>(real_tokens) / padded_tokens
                        : 0.0);
}

void ServerMetrics::ModelObserver::OnQueued(double seconds) {
  series_->queue->Observe(seconds);
}

void ServerMetrics::ModelObserver::OnQueueDepth(int sentences) {
  series_->depth->Set(sentences);
}

void ServerMetrics::ModelObserver::OnRejected(const char* reason) {
  metrics_->RecordRejected(model_, reason);
}

ServerMetrics::PerModel& ServerMetrics::ModelSeries(const std::string& model) {
  MutexLock lock(&mu_);
  PerModel& series = per_model_[model];
  if (series.inference == nullptr) {
    const prometheus::Labels labels = {{"model", model}};
    series.inference = &inference_duration_->Add(labels, LatencyBuckets());
    series.tokens = &input_tokens_->Add(labels);
    series.queue = &queue_duration_->Add(labels, LatencyBuckets());
    series.batch_size =
        &batch_size_->Add(labels, prometheus::Histogram::BucketBoundaries{
                                      1, 2, 4, 8, 16, 32, 64, 128, 256, 512});
    series.batch_tokens = &batch_tokens_->Add(
        labels, prometheus::Histogram::BucketBoundaries{
                    16, 64, 256, 1024, 2048, 4096, 8192, 16384, 65536});
    series.padding = &padding_ratio_->Add(
        labels, prometheus::Histogram::BucketBoundaries{0, 0.05, 0.1, 0.2, 0.3,
                                                        0.5, 0.7, 0.9});
    series.depth = &queue_depth_->Add(labels);
    for (const char* reason :
         {"overloaded", "deadline", "cancelled", "invalid", "unavailable"}) {
      rejected_->Add({{"model", model}, {"reason", reason}});
    }
    series.observer = std::make_unique<ModelObserver>(this, model, &series);
  }
  return series;
}

void ServerMetrics::RecordTokens(const std::string& model, int64_t tokens) {
  ModelSeries(model).tokens->Increment(static_cast<double>(tokens));
}

void ServerMetrics::RecordRejected(const std::string& model,
                                   const char* reason) {
  rejected_->Add({{"model", model}, {"reason", reason}}).Increment();
}

void ServerMetrics::SetQueueCapacity(const std::string& model, int sentences) {
  queue_capacity_->Add({{"model", model}}).Set(sentences);
}

BatchObserver* ServerMetrics::ForModel(const std::string& model) {
  return ModelSeries(model).observer.get();
}

void ServerMetrics::RecordInference(const std::string& model, double seconds,
                                    int64_t tokens) {
  PerModel& series = ModelSeries(model);  // node-stable: safe after unlock
  series.inference->Observe(seconds);
  series.tokens->Increment(static_cast<double>(tokens));
}

void ServerMetrics::RecordModelLoaded(const std::string& model,
                                      const std::string& architecture, int dim,
                                      double load_seconds) {
  prometheus::Gauge* info = &model_info_->Add({{"model", model},
                                               {"architecture", architecture},
                                               {"dim", std::to_string(dim)}});
  info->Set(1);
  {
    MutexLock lock(&mu_);
    prometheus::Gauge*& current = model_info_series_[model];
    if (current != nullptr && current != info) model_info_->Remove(current);
    current = info;
  }
  model_load_seconds_->Add({{"model", model}}).Set(load_seconds);
  ModelSeries(model);  // so the model's series exist before its first call
}

void ServerMetrics::RecordReload(const std::string& model, const char* result) {
  model_reloads_->Add({{"model", model}, {"result", result}}).Increment();
}

void ServerMetrics::SetModelVersion(const std::string& model, int64_t version) {
  MutexLock lock(&mu_);
  auto it = model_version_series_.find(model);
  if (version < 0) {
    if (it != model_version_series_.end()) {
      model_version_->Remove(it->second);
      model_version_series_.erase(it);
    }
    return;
  }
  if (it == model_version_series_.end()) {
    it = model_version_series_
             .emplace(model, &model_version_->Add({{"model", model}}))
             .first;
  }
  it->second->Set(static_cast<double>(version));
}

}  // namespace ctxembed
