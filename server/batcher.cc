#include "server/batcher.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace ctxembed {
namespace {

double Seconds(int64_t micros) { return static_cast<double>(micros) * 1e-6; }

}  // namespace

void RunBatch(Batch& batch, TowerScratch& scratch) {
  thread_local std::vector<TokenList> sentences;
  thread_local Eigen::MatrixXf out;
  const BatchJob::Key key = batch.items.front().job->key();
  const int n = static_cast<int>(batch.items.size());
  sentences.resize(n);
  // Swap the tokens in and back out: no copies, no allocation per token.
  for (int k = 0; k < n; ++k) {
    sentences[k].swap(batch.items[k].job->sentence(batch.items[k].index));
  }
  if (key.kind == BatchJob::Kind::kEmbed) {
    key.tower->Embed(sentences, key.pooling, scratch, &out);
    for (int k = 0; k < n; ++k) {
      batch.items[k].job->vectors().col(batch.items[k].index) = out.col(k);
    }
  } else {
    const Eigen::MatrixXf& tokens = key.tower->EncodeTokens(sentences, scratch);
    for (int k = 0; k < n; ++k) {
      batch.items[k].job->token_vectors()[batch.items[k].index] =
          tokens.middleCols(scratch.batch.offset(k), scratch.batch.length(k));
    }
  }
  for (int k = 0; k < n; ++k) {
    sentences[k].swap(batch.items[k].job->sentence(batch.items[k].index));
  }
}

void FinishBatch(Batch& batch) {
  for (PendingSentence& item : batch.items) item.job->SentencesDone(1);
}

void RunJobInline(const std::shared_ptr<BatchJob>& job,
                  TowerScratch& scratch) {
  Batch batch;
  for (int i = 0; i < job->size(); ++i) {
    batch.items.push_back({job, i, job->length(i), 0});
  }
  RunBatch(batch, scratch);
  FinishBatch(batch);
}

absl::StatusOr<std::unique_ptr<Batcher>> Batcher::Create(
    const Options& options, BatchObserver* observer) {
  const BatchQueue::Options& q = options.queue;
  if (q.max_batch_sentences < 1 || q.max_batch_tokens < 1 ||
      q.max_queue_delay_micros < 0 || q.max_queue_sentences < 1 ||
      options.num_workers < 0 || options.max_queue_wait_micros < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batcher options must be positive: max_batch_sentences ",
        q.max_batch_sentences, ", max_batch_tokens ", q.max_batch_tokens,
        ", max_queue_delay_micros ", q.max_queue_delay_micros,
        ", max_queue_sentences ", q.max_queue_sentences, ", num_workers ",
        options.num_workers));
  }
  std::unique_ptr<Batcher> b(new Batcher(options, observer));
  int workers = options.num_workers;
  if (workers == 0) {
    workers = std::max(1u, std::thread::hardware_concurrency());
  }
  for (int i = 0; i < workers; ++i) {
    b->workers_.emplace_back([p = b.get()] { p->WorkerLoop(); });
  }
  return b;
}

Batcher::Batcher(const Options& options, BatchObserver* observer)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      observer_(observer),
      queue_(options.queue) {}

Batcher::~Batcher() { Shutdown(0); }

double Batcher::EstimatedWaitLocked(int sentences) const {
  const int ahead = queue_.size() + sentences;
  if (saturated_rate_ > 0) return ahead / saturated_rate_;
  return seconds_per_sentence_ * ahead / static_cast<double>(workers_.size());
}

void Batcher::RecordBatchLocked(int sentences, double seconds, int64_t now) {
  const double per_sentence = seconds / sentences;
  seconds_per_sentence_ = seconds_per_sentence_ == 0
                              ? per_sentence
                              : 0.8 * seconds_per_sentence_ + 0.2 * per_sentence;
  if (queue_.size() == 0) {  // not saturated: the window says nothing
    window_start_micros_ = -1;
    return;
  }
  if (window_start_micros_ < 0) {
    window_start_micros_ = now;
    window_sentences_ = 0;
    return;
  }
  window_sentences_ += sentences;
  constexpr int64_t kWindowMicros = 200'000;
  if (now - window_start_micros_ >= kWindowMicros) {
    const double rate = window_sentences_ / Seconds(now - window_start_micros_);
    saturated_rate_ =
        saturated_rate_ == 0 ? rate : 0.7 * saturated_rate_ + 0.3 * rate;
    window_start_micros_ = now;
    window_sentences_ = 0;
  }
}

double Batcher::EstimatedWaitSeconds(int sentences) const {
  absl::MutexLock lock(&mu_);
  return EstimatedWaitLocked(sentences);
}

absl::Status Batcher::CheckAdmission(const BatchJob& job, int64_t now,
                                     const char** reason) const {
  if (stopping_) {
    *reason = "unavailable";
    return absl::UnavailableError("the server is shutting down");
  }
  const double wait = EstimatedWaitLocked(job.size());
  if (options_.admit_by_deadline && wait > 0 &&
      job.deadline_micros() != BatchJob::kNoDeadline) {
    const double left = Seconds(job.deadline_micros() - now);
    if (left < wait) {
      *reason = "deadline";
      return absl::DeadlineExceededError(absl::StrCat(
          "deadline cannot be met: ", static_cast<int>(left * 1e3),
          " ms left, about ", static_cast<int>(wait * 1e3),
          " ms of work is queued ahead (", queue_.size(), " sentences)"));
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

absl::Status Batcher::Submit(std::shared_ptr<BatchJob> job) {
  const int64_t now = clock_->NowMicros();
  const char* reason = "overloaded";
  absl::Status status;
  int depth = 0;
  {
    absl::MutexLock lock(&mu_);
    status = CheckAdmission(*job, now, &reason);
    if (status.ok()) status = queue_.Add(job, now);
    depth = queue_.size();
    if (status.ok()) work_.Signal();
  }
  if (observer_ != nullptr) {
    if (!status.ok()) observer_->OnRejected(reason);
    observer_->OnQueueDepth(depth);
  }
  return status;
}

void Batcher::Cancel(const std::shared_ptr<BatchJob>& job) {
  int depth;
  {
    absl::MutexLock lock(&mu_);
    queue_.Remove(job.get());
    depth = queue_.size();
  }
  if (job->Fail(absl::CancelledError("the client cancelled the call")) &&
      observer_ != nullptr) {
    observer_->OnRejected("cancelled");
  }
  if (observer_ != nullptr) observer_->OnQueueDepth(depth);
}

std::optional<Batch> Batcher::NextBatch() {
  while (true) {
    std::vector<std::shared_ptr<BatchJob>> expired, abandoned;
    std::optional<Batch> batch;
    int depth = 0;
    bool exit = false;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        const int64_t now = clock_->NowMicros();
        expired = queue_.DropExpired(now);
        if (stopping_ && now >= drain_deadline_micros_) {
          abandoned = queue_.Clear();
        }
        // While draining, whatever waits runs at once.
        batch = queue_.Take(now, running_ == 0 || stopping_);
        if (batch) {
          ++running_;
          break;
        }
        exit = stopping_ && queue_.size() == 0;
        if (exit || !expired.empty() || !abandoned.empty()) break;
        const int64_t due = queue_.NextDueMicros();
        if (due == std::numeric_limits<int64_t>::max()) {
          work_.Wait(&mu_);
        } else {
          // At least 50 us, so an injected clock that stands still makes
          // this poll, not spin.
          work_.WaitWithTimeout(
              &mu_, absl::Microseconds(std::max<int64_t>(due - now, 50)));
        }
      }
      depth = queue_.size();
    }
    FailAll(std::move(expired),
            absl::DeadlineExceededError(
                "the deadline passed while the request waited in the queue"),
            "deadline");
    FailAll(std::move(abandoned),
            absl::UnavailableError(
                "the server shut down before this request could run"),
            "unavailable");
    if (observer_ != nullptr) observer_->OnQueueDepth(depth);
    if (batch || exit) return batch;
  }
}

void Batcher::FailAll(std::vector<std::shared_ptr<BatchJob>> jobs,
                      const absl::Status& status, const char* reason) {
  for (auto& job : jobs) {
    if (job->Fail(status) && observer_ != nullptr) observer_->OnRejected(reason);
  }
}

void Batcher::WorkerLoop() {
  TowerScratch scratch;
  while (std::optional<Batch> batch = NextBatch()) {
    const int64_t start = clock_->NowMicros();
    if (observer_ != nullptr) {
      for (const PendingSentence& p : batch->items) {
        observer_->OnQueued(Seconds(start - p.enqueued_micros));
      }
    }
    RunBatch(*batch, scratch);
    const double seconds = Seconds(clock_->NowMicros() - start);
    const int n = static_cast<int>(batch->items.size());
    if (observer_ != nullptr) {
      observer_->OnBatch(n, batch->padded_tokens(), batch->real_tokens, seconds);
    }
    {
      absl::MutexLock lock(&mu_);
      --running_;
      RecordBatchLocked(n, seconds, clock_->NowMicros());
      work_.SignalAll();
    }
    FinishBatch(*batch);  // clients hear back after the books are kept
  }
}

void Batcher::Shutdown(int64_t drain_timeout_micros) {
  {
    absl::MutexLock lock(&mu_);
    if (joined_) {  // another call joins the workers: wait until it has
      mu_.Await(absl::Condition(&shut_down_));
      return;
    }
    if (!stopping_) {
      stopping_ = true;
      drain_deadline_micros_ = clock_->NowMicros() + drain_timeout_micros;
    }
    joined_ = true;
    work_.SignalAll();
  }
  for (std::thread& t : workers_) t.join();
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
}

int Batcher::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

double Batcher::seconds_per_sentence() const {  // for tests and reports
  absl::MutexLock lock(&mu_);
  return seconds_per_sentence_;
}

}  // namespace ctxembed
