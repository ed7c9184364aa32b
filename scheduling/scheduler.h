// One pool of worker threads shared by every model's queue (a Batcher), as
// TF Serving's shared batch scheduler does: however many models a server
// loads, batch threads stay at one per core.
#ifndef CTXEMBED_SCHEDULING_SCHEDULER_H_
#define CTXEMBED_SCHEDULING_SCHEDULER_H_

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
  };

  // INVALID_ARGUMENT for a negative num_workers.
  static absl::StatusOr<std::shared_ptr<Scheduler>> Create(
      const Options& options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  int num_workers() const { return static_cast<int>(workers_.size()); }
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
