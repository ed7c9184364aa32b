// The Prometheus metrics of the server. Their names and labels are a
// contract with dashboards and alerts (deploy/): add, never rename.
#ifndef CTXEMBED_SERVER_METRICS_H_
#define CTXEMBED_SERVER_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "scheduling/batcher.h"
#include "scheduling/mutex.h"

namespace ctxembed {

// The RPCs and HTTP routes, as they appear in the `method` label.
enum class Method {
  kEmbed,
  kEmbedTokens,
  kEmbedStream,
  kScore,
  kTokenize,
  kListModels,
  // The HTTP routes (server/http_api.h).
  kHttpOpenAiEmbeddings,
  kHttpEmbed,
  kHttpEmbedAll,
  kHttpTokenize,
  kHttpInfo,
  kHttpHealth,
  kHttpSimilarity,
};
constexpr int kNumMethods = 13;
const char* MethodName(Method method);

// Thread-safe. Registers its families in `registry`, which must outlive it.
//   ctxembed_requests_total{method,code}           counter
//   ctxembed_request_duration_seconds{method}      histogram, 50 us .. 10 s
//   ctxembed_inference_duration_seconds{model}     histogram, per batch (per
//                                                  call for unbatched calls)
//   ctxembed_input_tokens_total{model}             counter
//   ctxembed_inflight_requests                     gauge
//   ctxembed_model_info{model,architecture,dim}    gauge, 1 per loaded model
//   ctxembed_model_load_seconds{model}             gauge
//   ctxembed_queue_duration_seconds{model}         histogram, per sentence
//   ctxembed_batch_size{model}                     histogram, sentences
//   ctxembed_batch_tokens{model}                   histogram, padded tokens
//   ctxembed_padding_ratio{model}                  histogram, 1 - real/padded
//   ctxembed_queue_depth{model}                    gauge, sentences waiting
//   ctxembed_queue_capacity{model}                 gauge, max_queue_sentences
//   ctxembed_rejected_total{model,reason}          counter: overloaded,
//                                                  deadline, cancelled,
//                                                  invalid, unavailable,
//                                                  unauthenticated, forbidden,
//                                                  connections (model "" for
//                                                  the last three)
class ServerMetrics {
 public:
  explicit ServerMetrics(prometheus::Registry* registry);

  // One finished call: its status code and wall time in seconds.
  void RecordRequest(Method method, absl::StatusCode code, double seconds);
  // Time spent in `model` and the tokens it processed, for one call.
  void RecordInference(const std::string& model, double seconds,
                       int64_t tokens);
  // Tokens of a batched call (its compute time is recorded per batch).
  void RecordTokens(const std::string& model, int64_t tokens);
  // A request refused or dropped, by reason (see the list above).
  void RecordRejected(const std::string& model, const char* reason);
  // Publishes the queue bound of `model`'s batcher.
  void SetQueueCapacity(const std::string& model, int sentences);
  // The batch observer of `model`, owned by this object.
  BatchObserver* ForModel(const std::string& model);
  void AddInflight(double delta) { inflight_->Increment(delta); }
  // Publishes a loaded model's info and load time.
  // A version loaded, failed to load or unloaded (result "loaded",
  // "failed", "unloaded").
  void RecordReload(const std::string& model, const char* result);
  // The version served (the highest when several are); negative removes
  // the series (the model is gone).
  void SetModelVersion(const std::string& model, int64_t version);
  void RecordModelLoaded(const std::string& model,
                         const std::string& architecture, int dim,
                         double load_seconds);

  // The duration buckets: 50 us to 10 s, roughly 1-2.5-5 per decade.
  static prometheus::Histogram::BucketBoundaries LatencyBuckets();

 private:
  struct PerModel;
  // Publishes one model's batching events.
  class ModelObserver : public BatchObserver {
   public:
    ModelObserver(ServerMetrics* metrics, std::string model, PerModel* series)
        : metrics_(metrics), model_(std::move(model)), series_(series) {}
    void OnBatch(int sentences, int padded_tokens, int real_tokens,
                 double seconds) override;
    void OnQueued(double seconds) override;
    void OnQueueDepth(int sentences) override;
    void OnRejected(const char* reason) override;

   private:
    ServerMetrics* const metrics_;
    const std::string model_;
    PerModel* const series_;
  };
  struct PerModel {
    prometheus::Histogram* inference = nullptr;
    prometheus::Counter* tokens = nullptr;
    prometheus::Histogram* queue = nullptr;
    prometheus::Histogram* batch_size = nullptr;
    prometheus::Histogram* batch_tokens = nullptr;
    prometheus::Histogram* padding = nullptr;
    prometheus::Gauge* depth = nullptr;
    std::unique_ptr<ModelObserver> observer;
  };
  PerModel& ModelSeries(const std::string& model);

  // Constant after construction.
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_duration_;
  prometheus::Family<prometheus::Histogram>* inference_duration_;
  prometheus::Family<prometheus::Counter>* input_tokens_;
  prometheus::Family<prometheus::Gauge>* model_info_;
  prometheus::Family<prometheus::Gauge>* model_load_seconds_;
  prometheus::Family<prometheus::Histogram>* queue_duration_;
  prometheus::Family<prometheus::Histogram>* batch_size_;
  prometheus::Family<prometheus::Histogram>* batch_tokens_;
  prometheus::Family<prometheus::Histogram>* padding_ratio_;
  prometheus::Family<prometheus::Gauge>* queue_depth_;
  prometheus::Family<prometheus::Gauge>* queue_capacity_;
  prometheus::Family<prometheus::Counter>* rejected_;
  prometheus::Family<prometheus::Counter>* model_reloads_;
  prometheus::Family<prometheus::Gauge>* model_version_;
  prometheus::Gauge* inflight_;
  std::array<prometheus::Counter*, kNumMethods> ok_requests_;
  std::array<prometheus::Histogram*, kNumMethods> durations_;

  Mutex mu_;
  // node_hash_map: RecordInference keeps a reference after unlocking.
  absl::node_hash_map<std::string, PerModel> per_model_ ABSL_GUARDED_BY(mu_);
  // Each model's ctxembed_model_info and ctxembed_model_version series, so
  // a new version's labels replace the old ones.
  absl::node_hash_map<std::string, prometheus::Gauge*> model_info_series_
      ABSL_GUARDED_BY(mu_);
  absl::node_hash_map<std::string, prometheus::Gauge*> model_version_series_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_METRICS_H_
