// Dynamic batching for one model: requests' sentences queue up, workers run
// them in batches.
#ifndef CTXEMBED_SERVER_BATCHER_H_
#define CTXEMBED_SERVER_BATCHER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/batch_job.h"
#include "server/batch_queue.h"
#include "server/clock.h"

namespace ctxembed {

// What the batcher reports, for metrics. Implementations must be
// thread-safe; calls come from workers and submitters, never under a lock.
class BatchObserver {
 public:
  virtual ~BatchObserver() = default;
  // A batch ran: sentences, padded and real tokens, compute seconds.
  virtual void OnBatch(int sentences, int padded_tokens, int real_tokens,
                       double seconds) = 0;
  // A sentence waited this long between submission and its batch.
  virtual void OnQueued(double seconds) = 0;
  // Sentences waiting now.
  virtual void OnQueueDepth(int sentences) = 0;
  // A request was refused or dropped: "overloaded", "deadline",
  // "cancelled" or "unavailable".
  virtual void OnRejected(const char* reason) = 0;
};

// Runs every sentence of `batch` through its tower and stores the results in
// the jobs; FinishBatch then marks them done (which may end jobs and run
// their callbacks). Separate, so the workers record a batch's statistics
// before any client hears back.
void RunBatch(Batch& batch, TowerScratch& scratch);
void FinishBatch(Batch& batch);

// Runs every sentence of `job` on the calling thread, as one batch (for
// models served without a batcher, and the CLI's --local mode).
void RunJobInline(const std::shared_ptr<BatchJob>& job, TowerScratch& scratch);

// Thread-safe. One per model; owns its worker threads.
//
// Submit takes ownership of a job iff it returns OK, returns
// RESOURCE_EXHAUSTED when the queue is full and never blocks. A job ends
// exactly once through its done callback: OK when all its sentences ran;
// DEADLINE_EXCEEDED if its deadline passes while it waits (its sentences
// are dropped, not computed); CANCELLED after Cancel; UNAVAILABLE if
// shutdown's drain time runs out first.
class Batcher {
 public:
  struct Options {
    BatchQueue::Options queue;
    // Threads running batches; 0 means one per core.
    int num_workers = 0;
    // Refuse at admission a job whose deadline is sooner than the measured
    // time to work through the queue ahead of it.
    bool admit_by_deadline = true;
    // Refuse at admission (RESOURCE_EXHAUSTED) a job that would wait longer
    // than this, by the measured time per sentence; bounds the latency of
    // accepted work under overload. 0: only max_queue_sentences bounds it.
    int64_t max_queue_wait_micros = 0;
    // Time source; null means the steady clock.
    const Clock* clock = nullptr;
  };

  // INVALID_ARGUMENT for bad options. `observer` may be null; it must
  // outlive the batcher.
  static absl::StatusOr<std::unique_ptr<Batcher>> Create(
      const Options& options, BatchObserver* observer);
  ~Batcher();  // Shutdown(0) if not shut down yet

  absl::Status Submit(std::shared_ptr<BatchJob> job);
  // The estimated wait of `sentences` more sentences behind the queue: by
  // the rate sentences finished at while the queue was busy, or before that
  // is measured, by the compute time per sentence (0 until a batch ran).
  double EstimatedWaitSeconds(int sentences) const;
  // Drops the job's waiting sentences and fails it with CANCELLED (a no-op
  // if it has finished).
  void Cancel(const std::shared_ptr<BatchJob>& job);
  // Refuses new jobs (UNAVAILABLE), lets the workers drain the queue for up
  // to `drain_timeout_micros`, fails what is left with UNAVAILABLE, and
  // joins the workers. Idempotent; a concurrent second call returns only
  // once the first has joined the workers.
  void Shutdown(int64_t drain_timeout_micros);

  int queue_depth() const;
  // Measured seconds of compute per sentence (0 until a batch has run).
  double seconds_per_sentence() const;

 private:
  explicit Batcher(const Options& options, BatchObserver* observer);
  void WorkerLoop();
  // Waits for and removes the next batch; nullopt when the worker must exit.
  std::optional<Batch> NextBatch();
  void FailAll(std::vector<std::shared_ptr<BatchJob>> jobs,
               const absl::Status& status, const char* reason);
  // Why `job` may not enter the queue now (OK if it may).
  absl::Status CheckAdmission(const BatchJob& job, int64_t now,
                              const char** reason) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double EstimatedWaitLocked(int sentences) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordBatchLocked(int sentences, double seconds, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const Options options_;
  const Clock* const clock_;
  BatchObserver* const observer_;
  std::vector<std::thread> workers_;

  mutable absl::Mutex mu_;
  BatchQueue queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // batches being computed
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool joined_ ABSL_GUARDED_BY(mu_) = false;    // a Shutdown is joining
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;  // workers joined
  int64_t drain_deadline_micros_ ABSL_GUARDED_BY(mu_) = 0;
  double seconds_per_sentence_ ABSL_GUARDED_BY(mu_) = 0;  // moving average
  // Sentences/s finished while the queue stayed non-empty (0: not measured
  // yet): the capacity under whatever else the machine is doing, which the
  // compute time alone overstates.
  double saturated_rate_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t window_start_micros_ ABSL_GUARDED_BY(mu_) = -1;
  int window_sentences_ ABSL_GUARDED_BY(mu_) = 0;
  absl::CondVar work_;  // new sentences, a batch finished, or stopping
};

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_BATCHER_H_
