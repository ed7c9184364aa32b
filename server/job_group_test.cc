// JobGroup on a real batcher and scheduler: groups of one to three jobs
// where a job is refused, the client cancels mid-flight from another
// thread, or the deadline has passed, thousands of times (under ASan and
// TSan by the test command). Every group must end exactly once, with the
// first failure's status (never a sibling's CANCELLED), and with every
// result filled when it ends OK.
#include "server/job_group.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "inference/model_registry.h"
#include "inference/request_handler.h"
#include "model/test_data.h"
#include "scheduling/mutex.h"
#include "scheduling/scheduler.h"

namespace ctxembed {
namespace {

// At most kInFlight groups of at most 3 jobs of at most 3 sentences are in
// flight, so the queue never fills: every refusal is one the test meant.
constexpr int kQueue = 64;
constexpr int kInFlight = 4;

class JobGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = Model::Load(testing::GoldenDir() + "/models/sg_d8");
    ASSERT_TRUE(model.ok()) << model.status();
    auto scheduler = Scheduler::Create({.num_workers = 2});
    ASSERT_TRUE(scheduler.ok());
    // A job of more than kQueue sentences is refused (OUT_OF_RANGE);
    // batches wait a little for company, so siblings are often in flight
    // together.
    auto batcher = Batcher::Create({.queue = {.max_batch_sentences = 4,
                                              .max_queue_delay_micros = 300,
                                              .max_queue_sentences = kQueue}},
                                   RunEmbedBatch, nullptr, *scheduler);
    ASSERT_TRUE(batcher.ok());
    ASSERT_TRUE(models_.Add(*model, std::move(*batcher)).ok());
    handler_ =
        std::make_unique<RequestHandler>(RequestHandler::Options{}, &models_);
  }

  void TearDown() override {
    if (!models_.Batchers().empty())
      models_.Batchers()[0]->Shutdown(10'000'000);
  }

  // A job's spec and `n` sentences, as an Embed request prepares them.
  PreparedEmbed Prepare(int n) {
    v1::EmbedRequest request;
    for (int i = 0; i < n; ++i) {
      request.add_inputs(absl::StrCat("the quick fox ", i, " jumps"));
    }
    CallStats stats;
    auto prepared = handler_->Prepare(request, EmbedJob::Kind::kEmbed, &stats);
    EXPECT_TRUE(prepared.ok()) << prepared.status();
    return std::move(*prepared);
  }

  ModelRegistry models_;
  std::unique_ptr<RequestHandler> handler_;
  // Members, so that a callback that comes late (a failed test) finds them.
  std::atomic<int> ended_{0};
  std::atomic<int> problems_{0};
};

TEST_F(JobGroupTest, EndsOnceWithTheFirstFailure) {
  const char* env = std::getenv("CTXEMBED_STRESS_GROUPS");
  const int groups = env != nullptr ? std::atoi(env) : 1500;
  std::mt19937 rng(7);
  std::vector<std::thread> cancellers;
  // (The bound only keeps a hung group from hanging the test; it fails it.)
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::minutes(2);
  for (int g = 0; g < groups && problems_ < 5; ++g) {
    while (g - ended_.load() >= kInFlight &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    const int n_jobs = 1 + static_cast<int>(rng() % 3);
    // Job `refused` (if any) has one sentence more than the queue takes.
    const int refused = rng() % 4 == 0 ? static_cast<int>(rng() % n_jobs) : -1;
    const bool expired = rng() % 10 == 0;
    const bool cancel = rng() % 3 == 0;
    std::vector<EmbedJob::Spec> specs;
    std::vector<std::vector<TokenList>> sentences;
    std::vector<int> sizes;
    Servable servable;
    for (int k = 0; k < n_jobs; ++k) {
      PreparedEmbed p =
          Prepare(k == refused ? kQueue + 1 : 1 + static_cast<int>(rng() % 3));
      specs.push_back(p.spec);
      sizes.push_back(static_cast<int>(p.sentences.size()));
      sentences.push_back(std::move(p.sentences));
      servable = p.servable;
    }
    Batcher* batcher = servable.batcher.get();
    const int64_t deadline = expired
                                 ? batcher->clock()->NowMicros() - 1
                                 : batcher->clock()->NowMicros() + 60'000'000;
    auto calls = std::make_shared<std::atomic<int>>(0);
    auto group = JobGroup::Create(
        batcher, specs, std::move(sentences), deadline,
        [this, calls, refused, expired, cancel, sizes, g](
            const absl::Status& status,
            const std::vector<std::shared_ptr<EmbedJob>>& jobs) {
          std::string problem;
          if (calls->fetch_add(1) != 0) problem = "done ran twice";
          if (jobs.size() != sizes.size()) problem = "jobs missing";
          for (const auto& job : jobs) {
            if (!job->finished()) problem = "done before a job ended";
          }
          if (refused >= 0 && !expired) {
            // Refused on Submit, unless the cancel ended the job first.
            if (status.code() != absl::StatusCode::kOutOfRange &&
                !(cancel && status.code() == absl::StatusCode::kCancelled)) {
              problem = absl::StrCat("refused job: ", status.ToString());
            }
          } else if (expired) {
            if (status.code() != absl::StatusCode::kDeadlineExceeded &&
                status.code() != absl::StatusCode::kOutOfRange &&
                !(cancel && status.code() == absl::StatusCode::kCancelled)) {
              problem = absl::StrCat("expired: ", status.ToString());
            }
          } else if (!status.ok() &&
                     !(cancel &&
                       status.code() == absl::StatusCode::kCancelled)) {
            problem = absl::StrCat("unexpected: ", status.ToString());
          }
          if (status.ok()) {
            for (size_t k = 0; k < jobs.size(); ++k) {
              if (jobs[k]->vectors().cols() != sizes[k]) problem = "no results";
            }
          }
          if (!problem.empty()) {
            ADD_FAILURE() << "group " << g << ": " << problem;
            ++problems_;
          }
          ++ended_;
        });
    if (cancel) {
      const int delay = static_cast<int>(rng() % 400);
      cancellers.emplace_back([group, delay] {
        std::this_thread::sleep_for(std::chrono::microseconds(delay));
        group->Cancel();
        group->Cancel();  // a second cancel, or one after the end: no-ops
      });
    }
    group->Submit();
    if (cancellers.size() >= 8) {
      for (auto& t : cancellers) t.join();
      cancellers.clear();
    }
  }
  for (auto& t : cancellers) t.join();
  // Every group ends: by its results, its refusal, its deadline or its
  // cancel.
  while (ended_.load() < groups && problems_ == 0 &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(problems_, 0);
  if (problems_ == 0) {
    EXPECT_EQ(ended_.load(), groups);
  }
}

}  // namespace
}  // namespace ctxembed
