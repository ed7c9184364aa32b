#include "server/embed_stream.h"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "inference/embed_job.h"
#include "scheduling/batcher.h"
#include "scheduling/clock.h"
#include "scheduling/mutex.h"
#include "server/grpc_requests.h"
#include "server/grpc_status.h"
#include "server/request_parser.h"

namespace ctxembed {
namespace {

using SteadyClock = std::chrono::steady_clock;

// The job for a prepared request; `done` will receive it when it ends.
std::shared_ptr<EmbedJob> MakeJob(PreparedEmbed& prepared,
                                  int64_t deadline_micros,
                                  EmbedJob::Done done) {
  return std::make_shared<EmbedJob>(prepared.spec,
                                    std::move(prepared.sentences),
                                    deadline_micros, std::move(done));
}

// Hands `job` to `batcher`; a refusal ends the job (through its done
// callback) like everything else.
void RunJob(const std::shared_ptr<EmbedJob>& job, Batcher* batcher) {
  absl::Status submitted = batcher->Submit(job);
  if (!submitted.ok()) job->Fail(submitted);
}

absl::Status WithRequestId(const absl::Status& status,
                           const std::string& request_id) {
  if (status.ok() || request_id.empty()) return status;
  return absl::Status(status.code(), absl::StrCat("request_id ", request_id,
                                                  ": ", status.message()));
}

// One EmbedStream call. Requests are read while fewer than `max_inflight`
// are unanswered, so a fast sender cannot make the server buffer without
// bound; responses are written in request order. An error ends the stream
// with that error (naming the request_id) after the earlier responses.
//
// State changes happen under mu_; the gRPC operations they call for
// (StartRead, StartWrite, Finish) run after it is released, since gRPC may
// run the next reaction on the calling thread.
//
// Lifetime: gRPC calls OnDone once Finish has completed and no reaction is
// running, but a job's done callback runs on a batch worker, outside gRPC's
// accounting. So each job holds a reference (callbacks_), and whichever of
// OnDone and the last callback comes second deletes the reactor. Finish is
// never issued while another thread has decided on a StartRead or StartWrite
// it has not yet issued (issuing_), so no operation follows Finish.
class EmbedStreamReactor
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  EmbedStreamReactor(const RequestHandler* handler, ServerMetrics* metrics,
                     int max_inflight, grpc::CallbackServerContext* context)
      : handler_(handler),
        metrics_(metrics),
        max_inflight_(max_inflight),
        context_(context) {
    metrics_->AddInflight(1);
    reading_ = true;
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed (or went away)
      Actions actions;
      {
        MutexLock lock(&mu_);
        reading_ = false;
        reads_done_ = true;
        actions = NextActionsLocked();
      }
      Run(actions);
      return;
    }
    Submit();
  }

  void OnWriteDone(bool ok) override {
    Actions actions;
    {
      MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        failed_ = true;
        status_ = absl::CancelledError("the stream closed while writing");
      } else {
        pending_.erase(next_write_++);
      }
      actions = NextActionsLocked();
    }
    Run(actions);
  }

  void OnCancel() override {
    std::vector<std::pair<std::shared_ptr<EmbedJob>, std::shared_ptr<Batcher>>>
        jobs;
    {
      MutexLock lock(&mu_);
      for (auto& [seq, slot] : pending_) {
        jobs.emplace_back(slot.job, slot.batcher);
      }
    }
    for (auto& [job, batcher] : jobs) {
      if (job != nullptr && batcher != nullptr) batcher->Cancel(job);
    }
  }

  void OnDone() override {
    metrics_->AddInflight(-1);
    bool last;
    {
      MutexLock lock(&mu_);
      grpc_done_ = true;
      last = callbacks_ == 0;
    }
    if (last) delete this;
  }

 private:
  struct Slot {
    std::shared_ptr<v1::EmbedRequest> request;
    std::shared_ptr<EmbedJob> job;
    // Held until the slot is answered, so the batcher outlives a cancel
    // also after a reload.
    std::shared_ptr<Batcher> batcher;
    bool done = false;
    absl::Status status;
    grpc::ByteBuffer response;
    std::chrono::steady_clock::time_point start;
  };
  // What to do once mu_ is released.
  struct Actions {
    grpc::ByteBuffer* write = nullptr;
    bool read = false;
    // A write or read was decided: issuing_ was raised for it.
    bool issuing = false;
    bool finish = false;
    absl::Status status;
    // Unfinished jobs to end before finishing: their callbacks use `this`,
    // which gRPC deletes after Finish.
    std::vector<std::shared_ptr<EmbedJob>> abandon;
  };

  void Run(Actions a) {
    while (true) {
      if (a.write != nullptr) StartWrite(a.write);
      if (a.read) StartRead(&in_);
      for (const auto& job : a.abandon) {
        job->Fail(absl::CancelledError("the stream ended with an error"));
      }
      if (a.finish) Finish(ToGrpcStatus(a.status));
      if (!a.issuing) return;
      // A Finish held back while these operations were being issued may be
      // due now.
      MutexLock lock(&mu_);
      --issuing_;
      a = NextActionsLocked();
    }
  }

  void Submit() {
    auto request = std::make_shared<v1::EmbedRequest>();
    CallStats stats;
    absl::Status parsed = ParseRequest(in_, request.get());
    if (parsed.ok()) ApplyAutoTruncate(*handler_, request.get());
    absl::StatusOr<PreparedEmbed> prepared =
        parsed.ok()
            ? handler_->Prepare(*request, EmbedJob::Kind::kEmbed, &stats)
            : absl::StatusOr<PreparedEmbed>(parsed);
    std::shared_ptr<EmbedJob> job;
    std::shared_ptr<Batcher> batcher;
    int64_t seq;
    // The version that answers (no batcher: the job must not own it).
    Servable version;
    if (prepared.ok()) {
      version = {prepared->servable.model, nullptr, prepared->servable.version};
      batcher = prepared->servable.batcher;
    }
    Actions actions;
    {
      MutexLock lock(&mu_);
      reading_ = false;
      seq = next_seq_++;
      Slot& slot = pending_[seq];
      slot.request = request;
      slot.start = std::chrono::steady_clock::now();
      slot.batcher = batcher;
      if (prepared.ok()) {
        ++callbacks_;  // released at the end of the job's callback
        job =
            MakeJob(*prepared, DeadlineMicros(context_, batcher->clock()),
                    [this, seq, version](EmbedJob& job, const absl::Status& s) {
                      OnJobDone(seq, &job, &version, s);
                      ReleaseCallback();
                    });
        slot.job = job;
      }
      // The next read starts before the job can end the stream.
      actions = NextActionsLocked();
    }
    Run(actions);
    if (!prepared.ok()) {
      OnJobDone(seq, nullptr, nullptr, prepared.status());
    } else {
      RunJob(job, batcher.get());
    }
  }

  // Runs on the thread that finished the job.
  void OnJobDone(int64_t seq, EmbedJob* job, const Servable* version,
                 absl::Status status) {
    std::shared_ptr<v1::EmbedRequest> request;
    std::chrono::steady_clock::time_point start;
    {
      MutexLock lock(&mu_);
      request = pending_[seq].request;
      start = pending_[seq].start;
    }
    grpc::ByteBuffer response;
    if (status.ok()) {
      v1::EmbedResponse out;
      RequestHandler::FillEmbedResponse(*request, *version, *job, &out);
      metrics_->RecordTokens(version->model->name(), out.usage().tokens());
      SerializeResponse(out, &response);
    }
    status = WithRequestId(status, request->request_id());
    metrics_->RecordRequest(Method::kEmbedStream, status.code(),
                            SecondsSince(start));
    Actions actions;
    {
      MutexLock lock(&mu_);
      Slot& slot = pending_[seq];
      slot.done = true;
      slot.status = status;
      slot.response = std::move(response);
      slot.job.reset();
      actions = NextActionsLocked();
    }
    Run(actions);
  }

  // Ends a job callback's hold on the reactor (see the class comment).
  void ReleaseCallback() {
    bool last;
    {
      MutexLock lock(&mu_);
      last = --callbacks_ == 0 && grpc_done_;
    }
    if (last) delete this;
  }

  Actions NextActionsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Actions a;
    if (finished_) return a;
    auto it = pending_.find(next_write_);
    if (!writing_ && !failed_ && it != pending_.end() && it->second.done) {
      if (it->second.status.ok()) {
        writing_ = true;
        a.write = &it->second.response;
      } else {
        failed_ = true;
        status_ = it->second.status;
      }
    }
    if (!reading_ && !reads_done_ && !failed_ &&
        static_cast<int>(pending_.size()) < max_inflight_) {
      reading_ = true;
      a.read = true;
    }
    if (a.write != nullptr || a.read) {
      a.issuing = true;
      ++issuing_;
    }
    // Finish once everything is written and the client is done sending, or
    // at the first error (an outstanding read is then cancelled); never
    // while another operation is still being issued.
    if (!writing_ && issuing_ == 0 &&
        (failed_ || (reads_done_ && pending_.empty()))) {
      finished_ = true;
      a.finish = true;
      a.status = status_;
      for (auto& [seq, slot] : pending_) {
        if (!slot.done && slot.job != nullptr) a.abandon.push_back(slot.job);
      }
    }
    return a;
  }

  const RequestHandler* const handler_;
  ServerMetrics* const metrics_;
  const int max_inflight_;
  const grpc::CallbackServerContext* const context_;  // for its deadline
  grpc::ByteBuffer in_;

  Mutex mu_;
  std::map<int64_t, Slot> pending_ ABSL_GUARDED_BY(mu_);
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_write_ ABSL_GUARDED_BY(mu_) = 0;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  // Threads between deciding on a StartRead/StartWrite and issuing it.
  int issuing_ ABSL_GUARDED_BY(mu_) = 0;
  // Job callbacks that may still run, and whether gRPC has called OnDone.
  int callbacks_ ABSL_GUARDED_BY(mu_) = 0;
  bool grpc_done_ ABSL_GUARDED_BY(mu_) = false;
};

// A stream refused before it starts (no valid API key).
class RefusedStream
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  RefusedStream(const absl::Status& status, ServerMetrics* metrics)
      : metrics_(metrics), code_(status.code()), start_(SteadyClock::now()) {
    Finish(ToGrpcStatus(status));
  }
  void OnDone() override {
    metrics_->RecordRequest(Method::kEmbedStream, code_, SecondsSince(start_));
    delete this;
  }

 private:
  ServerMetrics* const metrics_;
  const absl::StatusCode code_;
  const SteadyClock::time_point start_;
};

}  // namespace

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StartEmbedStream(
    const RequestHandler* handler, ServerMetrics* metrics, int max_inflight,
    grpc::CallbackServerContext* context) {
  return new EmbedStreamReactor(handler, metrics, max_inflight, context);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* RefuseEmbedStream(
    const absl::Status& status, ServerMetrics* metrics) {
  return new RefusedStream(status, metrics);
}

}  // namespace ctxembed
