// The jobs of one call on one model's batcher: one job, or one per tower
// for a dual-encoder Score. Both front ends (gRPC, HTTP) end their unary
// calls through it, so the rules of a call's end live in one place.
#ifndef CTXEMBED_SERVER_JOB_GROUP_H_
#define CTXEMBED_SERVER_JOB_GROUP_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "inference/embed_job.h"
#include "scheduling/batcher.h"
#include "scheduling/mutex.h"

namespace ctxembed {

// Thread-safe. The first job to fail cancels its siblings and its status is
// the group's (the siblings' CANCELLED is never what a client hears). When
// the last job ends, `done` runs exactly once, on the thread that ended it,
// with the group's status (OK if every job succeeded) and the jobs, whose
// results it may read.
//
// Lifetime: each job's callback holds the group, and the group holds the
// jobs until `done` has run, so no callback outlives what it uses; the
// jobs -> callback -> group -> jobs cycle ends there. The group does not own
// the batcher: the caller keeps it (its Servable) until `done` has run and
// no Cancel can come, so that its last reference never drops on one of its
// own workers.
class JobGroup {
 public:
  using Done =
      std::function<void(const absl::Status& status,
                         const std::vector<std::shared_ptr<EmbedJob>>& jobs)>;

  // One job per spec, with sentences[k] for specs[k] (both non-empty, of
  // equal size). Nothing runs until Submit.
  static std::shared_ptr<JobGroup> Create(
      Batcher* batcher, const std::vector<EmbedJob::Spec>& specs,
      std::vector<std::vector<TokenList>> sentences, int64_t deadline_micros,
      Done done);

  // Hands the jobs to the batcher (once); a job a failed sibling has
  // already ended is skipped, and a refusal ends its job like any failure.
  void Submit();

  // Ends every job that has not ended with CANCELLED (the client went
  // away). Any time, from any thread; after `done`, nothing to do.
  void Cancel();

  struct PrivateTag {};
  JobGroup(PrivateTag, Batcher* batcher, int size, Done done);

 private:
  void OnJobDone(int k, const absl::Status& status);
  // Cancels every job but `except` (-1: all).
  void CancelJobs(int except);

  Batcher* const batcher_;
  Done done_;  // run, and released, by the last job's callback only
  // Slot k is written only by job k's callback, before its countdown.
  std::vector<absl::Status> statuses_;
  std::atomic<int> remaining_;
  std::atomic<int> first_failed_{-1};  // index of the first job to fail
  Mutex mu_;
  // Released once `done` has run.
  std::vector<std::shared_ptr<EmbedJob>> jobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_JOB_GROUP_H_
