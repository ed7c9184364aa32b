#include "scheduling/task.h"

#include <utility>

namespace ctxembed {

Task::Task(const TaskKey& key, std::vector<int> lengths,
           int64_t deadline_micros, Done done)
    : key_(key),
      lengths_(std::move(lengths)),
      deadline_micros_(deadline_micros),
      done_(std::move(done)),
      remaining_(static_cast<int>(lengths_.size())) {}

void Task::ItemsDone(int count) {
  // acq_rel: the last decrement sees every worker's result writes.
  if (remaining_.fetch_sub(count, std::memory_order_acq_rel) == count) {
    Complete(absl::OkStatus());
  }
}

bool Task::Fail(const absl::Status& status) { return Complete(status); }

bool Task::Complete(const absl::Status& status) {
  if (finished_.exchange(true, std::memory_order_acq_rel)) return false;
  Done done = std::move(done_);
  done(*this, status);
  return true;
}

}  // namespace ctxembed
