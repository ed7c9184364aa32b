#include "server/job_group.h"

#include <utility>

namespace ctxembed {

std::shared_ptr<JobGroup> JobGroup::Create(
    Batcher* batcher, const std::vector<EmbedJob::Spec>& specs,
    std::vector<std::vector<TokenList>> sentences, int64_t deadline_micros,
    Done done) {
  const int n = static_cast<int>(specs.size());
  auto group =
      std::make_shared<JobGroup>(PrivateTag{}, batcher, n, std::move(done));
  MutexLock lock(&group->mu_);
  for (int k = 0; k < n; ++k) {
    group->jobs_.push_back(std::make_shared<EmbedJob>(
        specs[k], std::move(sentences[k]), deadline_micros,
        [group, k](EmbedJob&, const absl::Status& status) {
          group->OnJobDone(k, status);
        }));
  }
  return group;
}

JobGroup::JobGroup(PrivateTag, Batcher* batcher, int size, Done done)
    : batcher_(batcher),
      done_(std::move(done)),
      statuses_(size),
      remaining_(size) {}

void JobGroup::Submit() {
  std::vector<std::shared_ptr<EmbedJob>> jobs;
  {
    MutexLock lock(&mu_);
    jobs = jobs_;
  }
  for (const auto& job : jobs) {
    if (job->finished()) continue;  // a sibling failed, or a cancel came
    absl::Status submitted = batcher_->Submit(job);
    if (!submitted.ok()) job->Fail(submitted);
  }
}

void JobGroup::Cancel() { CancelJobs(-1); }

void JobGroup::CancelJobs(int except) {
  std::vector<std::shared_ptr<EmbedJob>> jobs;
  {
    MutexLock lock(&mu_);
    jobs = jobs_;
  }
  for (int k = 0; k < static_cast<int>(jobs.size()); ++k) {
    if (k != except && !jobs[k]->finished()) batcher_->Cancel(jobs[k]);
  }
}

// Runs on the thread that ends job k.
void JobGroup::OnJobDone(int k, const absl::Status& status) {
  statuses_[k] = status;
  if (!status.ok()) {
    int none = -1;
    first_failed_.compare_exchange_strong(none, k, std::memory_order_acq_rel);
    CancelJobs(k);
  }
  if (remaining_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // The last job: every other callback is past its last use of the group's
  // state.
  std::vector<std::shared_ptr<EmbedJob>> jobs;
  {
    MutexLock lock(&mu_);
    jobs.swap(jobs_);
  }
  const int failed = first_failed_.load(std::memory_order_acquire);
  const absl::Status result = failed < 0 ? absl::OkStatus() : statuses_[failed];
  Done done = std::move(done_);
  done(result, jobs);
}

}  // namespace ctxembed
