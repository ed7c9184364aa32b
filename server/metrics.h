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
#include "absl/synchronization/mutex.h"

namespace ctxembed {

// The RPCs, as they appear in the `method` label.
enum class Method { kEmbed, kEmbedTokens, kEmbedStream, kScore, kTokenize,
                    kListModels };
constexpr int kNumMethods = 6;
const char* MethodName(Method method);

// Thread-safe. Registers its families in `registry`, which must outlive it.
//   ctxembed_requests_total{method,code}           counter
//   ctxembed_request_duration_seconds{method}      histogram, 50 us .. 10 s
//   ctxembed_inference_duration_seconds{model}     histogram
//   ctxembed_input_tokens_total{model}             counter
//   ctxembed_inflight_requests                     gauge
//   ctxembed_model_info{model,architecture,dim}    gauge, 1 per loaded model
//   ctxembed_model_load_seconds{model}             gauge
class ServerMetrics {
 public:
  explicit ServerMetrics(prometheus::Registry* registry);

  // One finished call: its status code and wall time in seconds.
  void RecordRequest(Method method, absl::StatusCode code, double seconds);
  // Time spent in `model` and the tokens it processed, for one call.
  void RecordInference(const std::string& model, double seconds,
                       int64_t tokens);
  void AddInflight(double delta) { inflight_->Increment(delta); }
  // Publishes a loaded model's info and load time.
  void RecordModelLoaded(const std::string& model,
                         const std::string& architecture, int dim,
                         double load_seconds);

  // The duration buckets: 50 us to 10 s, roughly 1-2.5-5 per decade.
  static prometheus::Histogram::BucketBoundaries LatencyBuckets();

 private:
  struct PerModel {
    prometheus::Histogram* inference = nullptr;
    prometheus::Counter* tokens = nullptr;
  };
  PerModel& ModelSeries(const std::string& model);

  // Constant after construction.
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_duration_;
  prometheus::Family<prometheus::Histogram>* inference_duration_;
  prometheus::Family<prometheus::Counter>* input_tokens_;
  prometheus::Family<prometheus::Gauge>* model_info_;
  prometheus::Family<prometheus::Gauge>* model_load_seconds_;
  prometheus::Gauge* inflight_;
  std::array<prometheus::Counter*, kNumMethods> ok_requests_;
  std::array<prometheus::Histogram*, kNumMethods> durations_;

  absl::Mutex mu_;
  // node_hash_map: RecordInference keeps a reference after unlocking.
  absl::node_hash_map<std::string, PerModel> per_model_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_METRICS_H_
