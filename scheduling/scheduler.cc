#include "scheduling/scheduler.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "scheduling/batcher.h"

namespace ctxembed {

struct Scheduler::Work {
  // Tasks of one queue to fail outside the lock.
  struct Failures {
    Batcher* queue = nullptr;
    std::vector<std::shared_ptr<Task>> expired;    // deadline passed
    std::vector<std::shared_ptr<Task>> abandoned;  // drain time ran out
    int depth = 0;                                 // queue depth after
  };
  Batcher* queue = nullptr;  // whose batch
  std::optional<Batch> batch;
  int depth = 0;  // that queue's depth after the batch was taken
  std::vector<Failures> failures;
  bool exit = false;
};

absl::StatusOr<std::shared_ptr<Scheduler>> Scheduler::Create(
    const Options& options) {
  if (options.num_workers < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_workers is ", options.num_workers, "; it must be at least 0"));
  }
  if (options.max_inflight_tokens < 0) {
    return absl::InvalidArgumentError("max_inflight_tokens is negative");
  }
  std::shared_ptr<Scheduler> s(new Scheduler(options));
  int workers = options.num_workers;
  if (workers == 0) {
    workers =
        static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  for (int i = 0; i < workers; ++i) {
    s->workers_.emplace_back([p = s.get()] { p->WorkerLoop(); });
  }
  return s;
}

Scheduler::Scheduler(const Options& options)
    : clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      max_inflight_tokens_(options.max_inflight_tokens) {}

Scheduler::~Scheduler() {
  {
    MutexLock lock(&mu_);
    exiting_ = true;
    work_.SignalAll();
  }
  for (std::thread& t : workers_) t.join();
}

void Scheduler::Register(Batcher* queue) {
  MutexLock lock(&mu_);
  queues_.push_back(queue);
}

void Scheduler::Unregister(Batcher* queue) {
  MutexLock lock(&mu_);
  queues_.erase(std::remove(queues_.begin(), queues_.end(), queue),
                queues_.end());
  next_queue_ = 0;
}

void Scheduler::CollectFailures(Batcher* q, int64_t now, Work* work) {
  q->AssertLockHeld();
  Work::Failures f;
  f.expired = q->queue_.DropExpired(now);
  if (exiting_ || (q->stopping_ && now >= q->drain_deadline_micros_)) {
    f.abandoned = q->queue_.Clear();
  }
  if (f.expired.empty() && f.abandoned.empty()) return;
  f.queue = q;
  f.depth = q->queue_.size();
  ++q->busy_;  // until the failures are delivered
  work->failures.push_back(std::move(f));
}

Scheduler::Work Scheduler::NextWork() {
  MutexLock lock(&mu_);
  while (true) {
    const int64_t now = clock_->NowMicros();
    Work work;
    for (Batcher* q : queues_) CollectFailures(q, now, &work);
    const size_t n = queues_.size();
    for (size_t i = 0; i < n; ++i) {
      const size_t k = (next_queue_ + i) % n;
      Batcher* q = queues_[k];
      q->AssertLockHeld();
      // A queue with no batch running takes what waits at once; so does
      // one that is draining.
      work.batch = q->queue_.Take(now, q->running_ == 0 || q->stopping_);
      if (!work.batch) continue;
      ++q->running_;
      ++q->busy_;
      work.queue = q;
      work.depth = q->queue_.size();
      next_queue_ = (k + 1) % n;
      break;
    }
    if (work.batch || !work.failures.empty()) return work;
    if (exiting_) {
      work.exit = true;
      return work;
    }
    int64_t due = std::numeric_limits<int64_t>::max();
    for (const Batcher* q : queues_) {
      q->AssertLockHeld();
      due = std::min(due, q->queue_.NextDueMicros());
      if (q->stopping_ && q->queue_.size() > 0) {
        due = std::min(due, q->drain_deadline_micros_);
      }
    }
    if (due == std::numeric_limits<int64_t>::max()) {
      work_.Wait(&mu_);
    } else {
      // At least 50 us, so an injected clock that stands still makes this
      // poll, not spin.
      work_.WaitWithTimeout(
          &mu_, absl::Microseconds(std::max<int64_t>(due - now, 50)));
    }
  }
}

void Scheduler::WorkerLoop() {
  while (true) {
    Work work = NextWork();
    for (Work::Failures& f : work.failures) {
      f.queue->FailAll(f.expired,
                       absl::DeadlineExceededError(
                           "the deadline passed while the request waited in "
                           "the queue"),
                       "deadline");
      f.queue->FailAll(
          f.abandoned,
          absl::UnavailableError(
              "the server shut down before this request could run"),
          "unavailable");
      if (f.queue->observer_ != nullptr) {
        f.queue->observer_->OnQueueDepth(f.depth);
      }
      // The queue may be destroyed once busy_ is 0: nothing touches it after.
      if (f.queue->busy_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        drained_.SignalAll();
      }
    }
    if (work.batch) {
      if (work.queue->observer_ != nullptr) {
        work.queue->observer_->OnQueueDepth(work.depth);
      }
      work.queue->RunBatch(*work.batch);
    }
    if (work.exit) return;
  }
}

}  // namespace ctxembed
