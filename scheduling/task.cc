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

int64_t Task::total_tokens() const {
  int64_t total = 0;
  for (int length : lengths_) total += length;
  return total;
}

void Task::SetOnEnd(std::function<void()> on_end) {
  {
    MutexLock lock(&end_mu_);
    if (!end_taken_) {
      on_end_ = std::move(on_end);
      return;
    }
  }
  on_end();  // the task has ended already
}

bool Task::Complete(const absl::Status& status) {
  if (finished_.exchange(true, std::memory_order_acq_rel)) return false;
  std::function<void()> on_end;
  {
    MutexLock lock(&end_mu_);
    end_taken_ = true;
    on_end = std::move(on_end_);
  }
  if (on_end) on_end();
  Done done = std::move(done_);
  done(*this, status);
  return true;
}

}  // namespace ctxembed
