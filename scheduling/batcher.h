// Dynamic batching for one model: a queue of tasks whose items a shared
// Scheduler's workers run in batches, through the batch function the model
// supplies.
#ifndef CTXEMBED_SCHEDULING_BATCHER_H_
#define CTXEMBED_SCHEDULING_BATCHER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "scheduling/batch_queue.h"
#include "scheduling/mutex.h"
#include "scheduling/scheduler.h"
#include "scheduling/task.h"

namespace ctxembed {

// What the batcher reports, for metrics. Implementations must be
// thread-safe; calls come from workers and submitters, never under a lock.
class BatchObserver {
 public:
  virtual ~BatchObserver() = default;
  // A batch ran: items, padded and real tokens, compute seconds.
  virtual void OnBatch(int items, int padded_tokens, int real_tokens,
                       double seconds) = 0;
  // An item waited this long between submission and its batch.
  virtual void OnQueued(double seconds) = 0;
  // Items waiting now.
  virtual void OnQueueDepth(int items) = 0;
  // A request was refused or dropped: "overloaded", "deadline",
  // "cancelled" or "unavailable".
  virtual void OnRejected(const char* reason) = 0;
};

// Computes every item of `batch` and stores the results in its tasks (the
// tasks are the model layer's subclasses of Task). Runs on a worker; must
// not fail a task (an error is the model's bug: it may store it for the
// done callback to report). The scheduler then marks the items done.
using BatchFunction = std::function<void(Batch& batch)>;

// Thread-safe. One per model (or model version).
//
// Submit takes ownership of a task iff it returns OK, returns
// RESOURCE_EXHAUSTED when the queue is full (or the wait would exceed
// max_queue_wait_micros), DEADLINE_EXCEEDED when the task's deadline is
// sooner than the work queued ahead of it, UNAVAILABLE after Shutdown, and
// never blocks. A task ends exactly once through its done callback: OK when
// all its items ran; DEADLINE_EXCEEDED if its deadline passes while it
// waits (its items are dropped, not computed); CANCELLED after Cancel;
// UNAVAILABLE if shutdown's drain time runs out first.
class Batcher {
 public:
  struct Options {
    BatchQueue::Options queue;
    // Without a scheduler given to Create: the workers of the batcher's own
    // scheduler (0: one per core).
    int num_workers = 0;
    // Refuse at admission a task whose deadline is sooner than the measured
    // time to work through the queue ahead of it.
    bool admit_by_deadline = true;
    // Refuse at admission (RESOURCE_EXHAUSTED) a task that would wait longer
    // than this, by the measured time per item; bounds the latency of
    // accepted work under overload. 0: only max_queue_sentences bounds it.
    int64_t max_queue_wait_micros = 0;
    // Without a scheduler given to Create: that scheduler's clock (null: the
    // steady clock) and token budget (Scheduler::Options).
    const Clock* clock = nullptr;
    int64_t max_inflight_tokens = 0;
  };

  // A batcher on `scheduler`, or on a scheduler of its own when that is
  // null. INVALID_ARGUMENT for bad options. `observer` may be null; it must
  // outlive the batcher.
  static absl::StatusOr<std::unique_ptr<Batcher>> Create(
      const Options& options, BatchFunction run, BatchObserver* observer,
      std::shared_ptr<Scheduler> scheduler = nullptr);
  ~Batcher();  // Shutdown(0) if not shut down yet
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  absl::Status Submit(std::shared_ptr<Task> task);
  // The estimated wait of `items` more items behind the queue: by the rate
  // items finished at while the queue was busy, or before that is measured,
  // by the compute time per item (0 until a batch ran).
  double EstimatedWaitSeconds(int items) const;
  // Drops the task's waiting items and fails it with CANCELLED (a no-op if
  // it has finished).
  void Cancel(const std::shared_ptr<Task>& task);
  // Refuses new tasks (UNAVAILABLE), lets the workers drain the queue for up
  // to `drain_timeout_micros`, fails what is left with UNAVAILABLE, and
  // returns once no worker is running this queue's batches or callbacks.
  // Idempotent; concurrent calls all return only then.
  void Shutdown(int64_t drain_timeout_micros);

  int queue_depth() const;
  // Measured seconds of compute per item (0 until a batch has run).
  double seconds_per_sentence() const;
  const Clock* clock() const { return scheduler_->clock(); }

  // Implementation details follow. The state below is guarded by the
  // scheduler's mutex, which its workers hold when they pick work.
 private:
  friend class Scheduler;

  Batcher(const Options& options, BatchFunction run, BatchObserver* observer,
          std::shared_ptr<Scheduler> scheduler);
  // For the scheduler, which holds its own mu_ (the same mutex): tells the
  // lock analysis so.
  void AssertLockHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(scheduler_->mu_) {
    scheduler_->mu_.AssertHeld();
  }
  // Why `task` may not enter the queue now (OK if it may).
  absl::Status CheckAdmission(const Task& task, int64_t now,
                              const char** reason) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(scheduler_->mu_);
  double EstimatedWaitLocked(int items) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(scheduler_->mu_);
  void RecordBatchLocked(int items, double seconds, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(scheduler_->mu_);
  // Runs one batch on the calling worker: metrics, the batch function, the
  // books, then the items' completion.
  void RunBatch(Batch& batch) ABSL_LOCKS_EXCLUDED(scheduler_->mu_);
  // Fails `tasks` with `status`, counting those it ended under `reason`.
  void FailAll(const std::vector<std::shared_ptr<Task>>& tasks,
               const absl::Status& status, const char* reason)
      ABSL_LOCKS_EXCLUDED(scheduler_->mu_);

  // Constant after construction.
  const Options options_;
  const BatchFunction run_;
  BatchObserver* const observer_;
  const std::shared_ptr<Scheduler> scheduler_;

  BatchQueue queue_ ABSL_GUARDED_BY(scheduler_->mu_);
  // Workers running this queue's batches or delivering its failures; a
  // shut-down batcher waits for 0 before it returns.
  // Raised under the scheduler's mutex, lowered without it (the last thing
  // a worker does with the batcher), so a batch's end costs no second lock.
  std::atomic<int> busy_{0};
  int running_ ABSL_GUARDED_BY(scheduler_->mu_) = 0;  // batches computing
  bool stopping_ ABSL_GUARDED_BY(scheduler_->mu_) = false;
  int64_t drain_deadline_micros_ ABSL_GUARDED_BY(scheduler_->mu_) = 0;
  double seconds_per_item_ ABSL_GUARDED_BY(scheduler_->mu_) = 0;  // average
  // Items/s finished while the queue stayed non-empty (0: not measured
  // yet): the capacity under whatever else the machine is doing, which the
  // compute time alone overstates.
  double saturated_rate_ ABSL_GUARDED_BY(scheduler_->mu_) = 0;
  int64_t window_start_micros_ ABSL_GUARDED_BY(scheduler_->mu_) = -1;
  int window_items_ ABSL_GUARDED_BY(scheduler_->mu_) = 0;
};

}  // namespace ctxembed

#endif  // CTXEMBED_SCHEDULING_BATCHER_H_
