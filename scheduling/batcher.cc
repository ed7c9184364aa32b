#include "scheduling/batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace ctxembed {
namespace {

double Seconds(int64_t micros) { return static_cast<double>(micros) * 1e-6; }

}  // namespace

absl::StatusOr<std::unique_ptr<Batcher>> Batcher::Create(
    const Options& options, BatchFunction run, BatchObserver* observer,
    std::shared_ptr<Scheduler> scheduler) {
  const BatchQueue::Options& q = options.queue;
  if (q.max_batch_sentences < 1 || q.max_batch_tokens < 1 ||
      q.max_queue_delay_micros < 0 || q.max_queue_sentences < 1 ||
      options.num_workers < 0 || options.max_queue_wait_micros < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batcher options must be positive: max_batch_sentences ",
        q.max_batch_sentences, ", max_batch_tokens ", q.max_batch_tokens,
        ", max_queue_delay_micros ", q.max_queue_delay_micros,
        ", max_queue_sentences ", q.max_queue_sentences, ", num_workers ",
        options.num_workers, ", max_queue_wait_micros ",
        options.max_queue_wait_micros));
  }
  if (run == nullptr) {
    return absl::InvalidArgumentError("the batcher needs a batch function");
  }
  if (scheduler == nullptr) {
    auto own =
        Scheduler::Create({.num_workers = options.num_workers,
                           .clock = options.clock,
                           .max_inflight_tokens = options.max_inflight_tokens});
    if (!own.ok()) return own.status();
    scheduler = *std::move(own);
  }
  std::unique_ptr<Batcher> b(
      new Batcher(options, std::move(run), observer, std::move(scheduler)));
  b->scheduler_->Register(b.get());
  return b;
}

Batcher::Batcher(const Options& options, BatchFunction run,
                 BatchObserver* observer, std::shared_ptr<Scheduler> scheduler)
    : options_(options),
      run_(std::move(run)),
      observer_(observer),
      scheduler_(std::move(scheduler)),
      queue_(options.queue) {}

Batcher::~Batcher() {
  Shutdown(0);
  scheduler_->Unregister(this);
}

double Batcher::EstimatedWaitLocked(int items) const {
  const int ahead = queue_.size() + items;
  if (saturated_rate_ > 0) return ahead / saturated_rate_;
  return seconds_per_item_ * ahead / scheduler_->num_workers();
}

void Batcher::RecordBatchLocked(int items, double seconds, int64_t now) {
  const double per_item = seconds / items;
  seconds_per_item_ = seconds_per_item_ == 0
                          ? per_item
                          : 0.8 * seconds_per_item_ + 0.2 * per_item;
  if (queue_.size() == 0) {  // not saturated: the window says nothing
    window_start_micros_ = -1;
    return;
  }
  if (window_start_micros_ < 0) {
    window_start_micros_ = now;
    window_items_ = 0;
    return;
  }
  window_items_ += items;
  constexpr int64_t kWindowMicros = 200'000;
  if (now - window_start_micros_ >= kWindowMicros) {
    const double rate = window_items_ / Seconds(now - window_start_micros_);
    saturated_rate_ =
        saturated_rate_ == 0 ? rate : 0.7 * saturated_rate_ + 0.3 * rate;
    window_start_micros_ = now;
    window_items_ = 0;
  }
}

double Batcher::EstimatedWaitSeconds(int items) const {
  MutexLock lock(&scheduler_->mu_);
  return EstimatedWaitLocked(items);
}

absl::Status Batcher::CheckAdmission(const Task& task, int64_t now,
                                     const char** reason) const {
  if (stopping_) {
    *reason = "unavailable";
    return absl::UnavailableError("the server is shutting down");
  }
  const double wait = EstimatedWaitLocked(task.size());
  if (options_.admit_by_deadline && wait > 0 &&
      task.deadline_micros() != Task::kNoDeadline) {
    const double left = Seconds(task.deadline_micros() - now);
    if (left < wait) {
      *reason = "deadline";
      return absl::DeadlineExceededError(absl::StrCat(
          "deadline cannot be met: ", static_cast<int>(left * 1e3),
          " ms left, about ", static_cast<int>(wait * 1e3),
          " ms of work is queued ahead (", queue_.size(), " sentences)"));
    }
  }
  const int64_t budget = scheduler_->max_inflight_tokens_;
  if (budget > 0) {
    const int64_t tokens = task.total_tokens();
    if (tokens > budget) {
      *reason = "invalid";
      return absl::OutOfRangeError(absl::StrCat(
          "request has ", tokens, " tokens; max_inflight_tokens is ", budget,
          " (send fewer or shorter inputs per request)"));
    }
    const int64_t inflight = scheduler_->inflight_tokens_->load();
    if (inflight + tokens > budget) {
      *reason = "overloaded";
      return absl::ResourceExhaustedError(absl::StrCat(
          "server busy: ", inflight, " tokens in flight and this request adds ",
          tokens, "; max_inflight_tokens is ", budget,
          " (retry with backoff)"));
    }
  }
  if (options_.max_queue_wait_micros > 0 &&
      wait > Seconds(options_.max_queue_wait_micros)) {
    *reason = "overloaded";
    return absl::ResourceExhaustedError(absl::StrCat(
        "server overloaded: this request would wait about ",
        static_cast<int>(wait * 1e3), " ms; max_queue_wait_micros is ",
        options_.max_queue_wait_micros, " (retry with backoff)"));
  }
  return absl::OkStatus();
}

absl::Status Batcher::Submit(std::shared_ptr<Task> task) {
  const int64_t now = clock()->NowMicros();
  const char* reason = "overloaded";
  absl::Status status;
  int depth = 0;
  {
    MutexLock lock(&scheduler_->mu_);
    status = CheckAdmission(*task, now, &reason);
    if (status.ok()) {
      status = queue_.Add(task, now);
      // Larger than the whole queue: a request that can never run.
      if (status.code() == absl::StatusCode::kOutOfRange) reason = "invalid";
    }
    if (status.ok() && scheduler_->max_inflight_tokens_ > 0) {
      // Counted under mu_ with the check above; handed back when the task
      // ends (at once if a sibling failed it meanwhile).
      const int64_t tokens = task->total_tokens();
      scheduler_->inflight_tokens_->fetch_add(tokens);
      task->SetOnEnd([counter = scheduler_->inflight_tokens_, tokens] {
        counter->fetch_sub(tokens);
      });
    }
    depth = queue_.size();
    if (status.ok()) scheduler_->work_.Signal();
  }
  if (observer_ != nullptr) {
    if (!status.ok()) observer_->OnRejected(reason);
    observer_->OnQueueDepth(depth);
  }
  return status;
}

void Batcher::Cancel(const std::shared_ptr<Task>& task) {
  int depth;
  {
    MutexLock lock(&scheduler_->mu_);
    queue_.Remove(task.get());
    depth = queue_.size();
  }
  if (task->Fail(absl::CancelledError("the client cancelled the call")) &&
      observer_ != nullptr) {
    observer_->OnRejected("cancelled");
  }
  if (observer_ != nullptr) observer_->OnQueueDepth(depth);
}

void Batcher::FailAll(const std::vector<std::shared_ptr<Task>>& tasks,
                      const absl::Status& status, const char* reason) {
  for (const auto& task : tasks) {
    if (task->Fail(status) && observer_ != nullptr) {
      observer_->OnRejected(reason);
    }
  }
}

void Batcher::RunBatch(Batch& batch) {
  const Clock* clock = this->clock();
  const int64_t start = clock->NowMicros();
  if (observer_ != nullptr) {
    for (const PendingItem& p : batch.items) {
      observer_->OnQueued(Seconds(start - p.enqueued_micros));
    }
  }
  run_(batch);
  const double seconds = Seconds(clock->NowMicros() - start);
  const int n = static_cast<int>(batch.items.size());
  if (observer_ != nullptr) {
    observer_->OnBatch(n, batch.padded_tokens(), batch.real_tokens, seconds);
  }
  {
    MutexLock lock(&scheduler_->mu_);
    --running_;
    RecordBatchLocked(n, seconds, clock->NowMicros());
    scheduler_->work_.SignalAll();
  }
  // Clients hear back after the books are kept.
  for (PendingItem& item : batch.items) item.task->ItemsDone(1);
  batch.items.clear();  // the tasks' last references may go here
  // This batcher may be destroyed once busy_ is 0: nothing touches it after.
  Scheduler* scheduler = scheduler_.get();
  if (busy_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    scheduler->drained_.SignalAll();
  }
}

void Batcher::Shutdown(int64_t drain_timeout_micros) {
  MutexLock lock(&scheduler_->mu_);
  if (!stopping_) {
    stopping_ = true;
    drain_deadline_micros_ = clock()->NowMicros() + drain_timeout_micros;
    scheduler_->work_.SignalAll();
  }
  // Workers signal drained_ as this queue's busy count reaches 0; the
  // timeout covers a signal sent between this check and the wait, and the
  // queue emptying by cancellation or expiry.
  while (queue_.size() > 0 || busy_.load(std::memory_order_acquire) > 0) {
    scheduler_->drained_.WaitWithTimeout(&scheduler_->mu_,
                                         absl::Milliseconds(5));
  }
}

int Batcher::queue_depth() const {
  MutexLock lock(&scheduler_->mu_);
  return queue_.size();
}

double Batcher::seconds_per_sentence() const {  // for tests and reports
  MutexLock lock(&scheduler_->mu_);
  return seconds_per_item_;
}

}  // namespace ctxembed
