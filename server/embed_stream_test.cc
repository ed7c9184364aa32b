// The EmbedStream reactor against a fake gRPC stream, so the whole exchange
// (reactions on "network" threads, jobs finishing on scheduler workers,
// StartRead / StartWrite / Finish issued from either) runs in code
// ThreadSanitizer can see: Debian's gRPC is not built with TSan, so the
// same test over a real channel cannot run under it. Streams of 4-16
// requests where one fails and the client cancels mid-way, thousands of
// times (CTXEMBED_STRESS_STREAMS per thread, default 400), under ASan and
// TSan by the test command.
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_callback.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "inference/embed_job.h"
#include "inference/model_registry.h"
#include "inference/request_handler.h"
#include "model/test_data.h"
#include "scheduling/mutex.h"
#include "scheduling/scheduler.h"
#include "server/embedder_service.h"
#include "server/metrics.h"

namespace ctxembed {
namespace {

using Reactor = grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>;

grpc::ByteBuffer Serialize(const v1::EmbedRequest& request) {
  grpc::Slice slice(request.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

// The client side and the transport of one stream: what gRPC's callback
// server does with a bidi reactor, driven by two threads (reads; writes,
// Finish and OnDone), with the guarantees gRPC gives: reactions may run
// concurrently, OnCancel comes at most once and before OnDone, OnDone comes
// last, after Finish and after every started operation has had its
// reaction.
class FakeStream : public grpc::ServerCallbackReaderWriter<grpc::ByteBuffer,
                                                           grpc::ByteBuffer> {
 public:
  // Requests 0..n-1 (ids "0".."n-1"); request `bad` has no inputs (the
  // server refuses it); the client cancels once request `cancel` is sent
  // (n: never).
  FakeStream(int n, int bad, int cancel) : n_(n), bad_(bad), cancel_(cancel) {}

  // Runs the stream to its end; returns "" or what went wrong.
  std::string Run(Reactor* reactor) {
    reactor_ = reactor;
    BindReactor(reactor);  // issues the read the reactor started
    std::thread reads([this] { ReadLoop(); });
    WriteLoop();
    reads.join();
    return Check();
  }

  // Calls from the reactor (any thread).
  void Read(grpc::ByteBuffer* msg) override {
    MutexLock lock(&mu_);
    EXPECT_EQ(read_, nullptr) << "a second read while one is pending";
    EXPECT_FALSE(finished_) << "a read after Finish";
    read_ = msg;
    cv_.SignalAll();
  }
  void Write(const grpc::ByteBuffer* msg, grpc::WriteOptions) override {
    MutexLock lock(&mu_);
    EXPECT_EQ(write_, nullptr) << "a second write while one is pending";
    EXPECT_FALSE(finished_) << "a write after Finish";
    write_ = msg;
    cv_.SignalAll();
  }
  void Finish(grpc::Status s) override {
    MutexLock lock(&mu_);
    EXPECT_FALSE(finished_) << "Finish twice";
    finished_ = true;
    status_ = s;
    cv_.SignalAll();
  }
  void SendInitialMetadata() override {}
  void WriteAndFinish(const grpc::ByteBuffer*, grpc::WriteOptions,
                      grpc::Status) override {
    ADD_FAILURE() << "WriteAndFinish is not used";
  }

 private:
  grpc::internal::ServerReactor* reactor() override { return reactor_; }
  void CallOnDone() override {}

  // Waits on cv_ for at most a minute: a stream that makes no progress for
  // that long is a hang, which must fail the test rather than stall it.
  void WaitOrDie() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (cv_.WaitWithTimeout(&mu_, absl::Seconds(60))) {
      std::fprintf(stderr,
                   "FakeStream: no progress for 60 s (n %d, bad %d, "
                   "cancel %d, sent %d, finished %d)\n",
                   n_, bad_, cancel_, sent_, finished_);
      std::abort();
    }
  }

  // Answers every read the reactor starts until it calls Finish: with the
  // next request, a half-close (a failed read) once all are sent, or a
  // failed read once the client cancelled.
  void ReadLoop() {
    while (true) {
      grpc::ByteBuffer* target;
      bool ok, cancel;
      {
        MutexLock lock(&mu_);
        while (read_ == nullptr && !finished_) WaitOrDie();
        if (read_ == nullptr) break;  // finished, no read pending
        target = read_;
        read_ = nullptr;
        ok = !finished_ && !cancelled_ && sent_ < n_;
        if (ok) {
          v1::EmbedRequest request;
          request.set_request_id(absl::StrCat(sent_));
          if (sent_ != bad_) {
            request.add_inputs(absl::StrCat("the dog bit the man ", sent_));
            for (int k = 0; k < sent_ % 3; ++k) request.add_inputs("a bank");
          }
          *target = Serialize(request);
          ++sent_;
        }
        cancel = ok && sent_ == cancel_ + 1;
        ++in_reaction_;
      }
      reactor_->OnReadDone(ok);
      if (cancel) Cancel();
      MutexLock lock(&mu_);
      --in_reaction_;
      cv_.SignalAll();
    }
    MutexLock lock(&mu_);
    reads_over_ = true;
    cv_.SignalAll();
  }

  // The client cancels: gRPC calls OnCancel, and operations still pending
  // fail.
  void Cancel() {
    {
      MutexLock lock(&mu_);
      cancelled_ = true;
      ++in_reaction_;
      cv_.SignalAll();
    }
    reactor_->OnCancel();
    MutexLock lock(&mu_);
    --in_reaction_;
    cv_.SignalAll();
  }

  // Completes writes in order; once Finish has come, the reads are over and
  // no reaction runs, calls OnDone (the reactor may delete itself then).
  void WriteLoop() {
    while (true) {
      const grpc::ByteBuffer* written = nullptr;
      bool ok = false;
      {
        MutexLock lock(&mu_);
        while (write_ == nullptr &&
               !(finished_ && reads_over_ && in_reaction_ == 0)) {
          WaitOrDie();
        }
        if (write_ == nullptr) break;
        written = write_;
        write_ = nullptr;
        ok = !cancelled_;
        ++in_reaction_;
      }
      if (ok) {
        v1::EmbedResponse response;
        EXPECT_TRUE(response.ParseFromString(Bytes(*written)));
        MutexLock lock(&mu_);
        ids_.push_back(response.request_id());
      }
      reactor_->OnWriteDone(ok);
      MutexLock lock(&mu_);
      --in_reaction_;
      cv_.SignalAll();
    }
    reactor_->OnDone();
  }

  std::string Check() {
    MutexLock lock(&mu_);
    for (size_t i = 0; i < ids_.size(); ++i) {
      if (ids_[i] != absl::StrCat(i)) {
        return absl::StrCat("response ", ids_[i], " came when ", i, " was due");
      }
    }
    const int answered = static_cast<int>(ids_.size());
    if (cancelled_) return "";  // any prefix of answers, any ending
    if (bad_ < n_) {
      const std::string want =
          absl::StrCat("request_id ", bad_, ": request has no inputs");
      if (status_.error_code() != grpc::StatusCode::INVALID_ARGUMENT ||
          status_.error_message() != want || answered != bad_) {
        return absl::StrCat("bad request ", bad_, ": ", answered,
                            " answers, status ", status_.error_code(), " ",
                            status_.error_message());
      }
      return "";
    }
    if (!status_.ok() || answered != n_) {
      return absl::StrCat("clean stream: ", answered, " of ", n_,
                          " answers, status ", status_.error_code(), " ",
                          status_.error_message());
    }
    return "";
  }

  const int n_, bad_, cancel_;
  Reactor* reactor_ = nullptr;
  Mutex mu_;
  CondVar cv_;
  grpc::ByteBuffer* read_ ABSL_GUARDED_BY(mu_) = nullptr;
  const grpc::ByteBuffer* write_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_over_ ABSL_GUARDED_BY(mu_) = false;
  int in_reaction_ ABSL_GUARDED_BY(mu_) = 0;
  int sent_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> ids_ ABSL_GUARDED_BY(mu_);
};

TEST(EmbedStreamTest, FailingAndCancelledStreamsEndCleanly) {
  auto model = Model::Load(testing::GoldenDir() + "/models/sg_d8");
  ASSERT_TRUE(model.ok()) << model.status();
  auto scheduler = Scheduler::Create({.num_workers = 2});
  ASSERT_TRUE(scheduler.ok());
  prometheus::Registry registry;
  ServerMetrics metrics(&registry);
  // Batches wait a little for company, so several requests of a stream are
  // in flight when one fails.
  auto batcher = Batcher::Create(
      {.queue = {.max_batch_sentences = 8, .max_queue_delay_micros = 300}},
      RunEmbedBatch, metrics.ForModel((*model)->name()), *scheduler);
  ASSERT_TRUE(batcher.ok());
  ModelRegistry models;
  ASSERT_TRUE(models.Add(*model, std::move(*batcher)).ok());
  RequestHandler handler({}, &models);
  EmbedderService service(&handler, &metrics, /*max_stream_inflight=*/8);

  const char* env = std::getenv("CTXEMBED_STRESS_STREAMS");
  const int streams = env != nullptr ? std::atoi(env) : 400;
  std::atomic<int> problems{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(99 + t);
      for (int i = 0; i < streams && problems < 5; ++i) {
        const int n = 4 + static_cast<int>(rng() % 13);
        const int bad = rng() % 3 == 0 ? n : static_cast<int>(rng() % n);
        const int cancel = rng() % 4 == 0 ? static_cast<int>(rng() % n) : n;
        grpc::CallbackServerContext context;
        FakeStream stream(n, bad, cancel);
        const std::string problem = stream.Run(service.EmbedStream(&context));
        if (!problem.empty()) {
          ADD_FAILURE() << "thread " << t << " stream " << i << " (n " << n
                        << ", bad " << bad << ", cancel " << cancel
                        << "): " << problem;
          ++problems;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(problems, 0);
  // Job callbacks of the last streams may still be returning: the batcher's
  // shutdown waits for them before the reactors' last references go.
  models.Batchers()[0]->Shutdown(10'000'000);
}

}  // namespace
}  // namespace ctxembed
