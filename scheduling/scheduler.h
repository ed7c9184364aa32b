// One pool of worker threads shared by every model's queue (a Batcher), as
// TF Serving's shared batch scheduler does: however many models a server
// loads, batch threads stay at one per core.
#ifndef CTXEMBED_SCHEDULING_SCHEDULER_H_
#define CTXEMBED_SCHEDULING_SCHEDULER_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduling/clock.h"
#include "scheduling/mutex.h"

namespace ctxembed {

class Batcher;

// Thread-safe. Owns the worker threads; Batchers register their queues with
// it (Batcher::Create) and hold a reference, so it outlives them. Workers
// serve the queues in turn (round robin among those with a batch due).
//
// The destructor joins the workers. Queues still registered then (a Batcher
// not shut down) have their waiting work failed with UNAVAILABLE.
class Scheduler {
 public:
  struct Options {
    // Worker threads; 0 means one per core.
    int num_workers = 0;
    // Time source for queue delays and deadlines; null means the steady
    // clock. Must outlive the scheduler.
    const Clock* clock = nullptr;
    // Tokens admitted and not yet finished, across every batcher on this
    // scheduler (a bound on the memory requests hold); a request that would
    // go past it is refused with RESOURCE_EXHAUSTED, one larger than the
    // whole budget with OUT_OF_RANGE. 0: no bound.
    int64_t max_inflight_tokens = 0;
  };

  // INVALID_ARGUMENT for a negative num_workers or max_inflight_tokens.
  static absl::StatusOr<std::shared_ptr<Scheduler>> Create(
      const Options& options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  int num_workers() const { return static_cast<int>(workers_.size()); }
  // Tokens admitted and not yet finished (see Options).
  int64_t inflight_tokens() const { return inflight_tokens_->load(); }
  const Clock* clock() const { return clock_; }

  // Implementation details follow.
 private:
  friend class Batcher;
  // A batch or failures to deliver, found by a worker under mu_.
  struct Work;

  explicit Scheduler(const Options& options);
  void WorkerLoop();
  // Waits until there is something to do; `exit` set when the worker must
  // stop.
  Work NextWork();
  // Collects `queue`'s expired and abandoned tasks into `work`.
  void CollectFailures(Batcher* queue, int64_t now, Work* work)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Register(Batcher* queue) ABSL_LOCKS_EXCLUDED(mu_);
  void Unregister(Batcher* queue) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const Clock* const clock_;
  const int64_t max_inflight_tokens_;
  // Shared with the tasks' on_end hooks, which may run after the scheduler
  // is gone. Added to under mu_ (admission), taken from without it.
  const std::shared_ptr<std::atomic<int64_t>> inflight_tokens_ =
      std::make_shared<std::atomic<int64_t>>(0);
  std::vector<std::thread> workers_;

  // Guards the scheduler and the state of every registered Batcher.
  Mutex mu_;
  std::vector<Batcher*> queues_ ABSL_GUARDED_BY(mu_);
  size_t next_queue_ ABSL_GUARDED_BY(mu_) = 0;  // round robin
  bool exiting_ ABSL_GUARDED_BY(mu_) = false;
  // New work, a batch finished, a queue stopping, or exiting.
  CondVar work_;
  // A queue's busy count reached 0 (signalled without mu_ held: waiters
  // also wake on a short timeout).
  CondVar drained_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_SCHEDULING_SCHEDULER_H_
