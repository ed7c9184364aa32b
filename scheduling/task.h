// One request's share of a scheduler's work: items (sentences, pairs: the
// scheduler does not know which) with a length each, a batch key, a deadline
// and the callback that ends the request. What the items are and where their
// results go belongs to the subclass the model layer defines.
#ifndef CTXEMBED_SCHEDULING_TASK_H_
#define CTXEMBED_SCHEDULING_TASK_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "scheduling/mutex.h"

namespace ctxembed {

// Items of tasks batch together only when their keys are equal. `target` is
// whatever the batch function runs (a tower, say); `variant` tells apart
// the ways it can run (pooling, output kind). Opaque to the scheduler.
struct TaskKey {
  const void* target = nullptr;
  int variant = 0;
  bool operator==(const TaskKey& o) const {
    return target == o.target && variant == o.variant;
  }
};

// Thread-safe where noted. Workers complete distinct items concurrently; the
// done callback runs exactly once, on the thread that finishes the task (a
// worker, or the one that fails or cancels it), never under a scheduler
// lock.
class Task {
 public:
  static constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();
  using Done = std::function<void(Task& task, const absl::Status& status)>;

  // `lengths` (one per item, in tokens) must not be empty.
  Task(const TaskKey& key, std::vector<int> lengths, int64_t deadline_micros,
       Done done);
  virtual ~Task() = default;
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  const TaskKey& key() const { return key_; }
  int size() const { return static_cast<int>(lengths_.size()); }
  int length(int i) const { return lengths_[i]; }
  // On the scheduler's clock; kNoDeadline if none.
  int64_t deadline_micros() const { return deadline_micros_; }

  // Thread-safe. Records `count` finished items; the last one completes the
  // task with OK. Results written before this call are visible to the done
  // callback.
  void ItemsDone(int count);
  // Thread-safe. Completes the task with `status` unless it already has
  // completed; returns true if this call completed it.
  bool Fail(const absl::Status& status);
  // Thread-safe.
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  // Sum of the items' lengths.
  int64_t total_tokens() const;

  // Thread-safe. `on_end` runs exactly once: just before the done callback,
  // however the task ends, or at once if it has ended already (the batcher
  // hands back the task's share of the in-flight token budget this way; a
  // task may be failed by a sibling while it is being queued).
  void SetOnEnd(std::function<void()> on_end);

 private:
  bool Complete(const absl::Status& status);

  // Constant after construction.
  const TaskKey key_;
  const std::vector<int> lengths_;
  const int64_t deadline_micros_;

  Done done_;  // moved out by the one call that completes the task
  Mutex end_mu_;
  std::function<void()> on_end_ ABSL_GUARDED_BY(end_mu_);
  bool end_taken_ ABSL_GUARDED_BY(end_mu_) = false;  // Complete took on_end_
  std::atomic<int> remaining_;
  std::atomic<bool> finished_{false};
};

}  // namespace ctxembed

#endif  // CTXEMBED_SCHEDULING_TASK_H_
