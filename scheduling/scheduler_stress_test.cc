// Many clients against three batchers on one shared scheduler, with
// cancellations, short deadlines, refusals and concurrent shutdowns in
// flight. Every task must end exactly once, with a status its fate allows,
// and with correct results when OK. Run under ASan and ThreadSanitizer by
// the test command. Iterations: CTXEMBED_STRESS_TASKS per client (default
// 3000).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "scheduling/batcher.h"
#include "scheduling/scheduler.h"

namespace ctxembed {
namespace {

extern std::atomic<int> by_code[32];

// Items' lengths are their values; the batch function writes value + 1.
class CountTask : public Task {
 public:
  CountTask(const TaskKey& key, const std::vector<int>& values,
            int64_t deadline, std::atomic<int>* ends,
            std::atomic<int>* problems)
      : Task(key, values, deadline,
             [this, ends, problems](Task& task, const absl::Status& s) {
               Check(s, problems);
               by_code[static_cast<int>(s.code()) % 32].fetch_add(1);
               ends->fetch_add(1);
               ended.fetch_add(1);
             }),
        values_(values),
        results_(values.size(), 0) {}

  void Write(int index) { results_[index] = values_[index] + 1; }
  std::atomic<int> ended{0};

 private:
  void Check(const absl::Status& s, std::atomic<int>* problems) {
    switch (s.code()) {
      case absl::StatusCode::kOk:
        for (size_t i = 0; i < values_.size(); ++i) {
          if (results_[i] != values_[i] + 1) problems->fetch_add(1);
        }
        break;
      case absl::StatusCode::kCancelled:
      case absl::StatusCode::kDeadlineExceeded:
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kResourceExhausted:
        break;
      default:
        problems->fetch_add(1);
    }
  }

  const std::vector<int> values_;
  std::vector<int> results_;
};

std::atomic<int> by_code[32];

void Increment(Batch& batch) {
  for (PendingItem& item : batch.items) {
    static_cast<CountTask&>(*item.task).Write(item.index);
  }
}

// One round: a fresh scheduler, three batchers, six clients.
void RunRound(int per_client) {
  auto scheduler = Scheduler::Create({.num_workers = 2});
  ASSERT_TRUE(scheduler.ok());
  std::vector<std::unique_ptr<Batcher>> batchers;
  for (int m = 0; m < 3; ++m) {
    auto b =
        Batcher::Create({.queue = {.max_batch_sentences = 8,
                                   .max_queue_delay_micros = 200,
                                   .max_queue_sentences = m == 0 ? 8 : 1024}},
                        Increment, nullptr, *scheduler);
    ASSERT_TRUE(b.ok());
    batchers.push_back(*std::move(b));
  }
  std::atomic<int> ends{0}, problems{0}, created{0};
  std::vector<std::shared_ptr<CountTask>> all[6];
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(77 + c);
      for (int i = 0; i < per_client; ++i) {
        Batcher& b = *batchers[rng() % 3];
        std::vector<int> values(1 + rng() % 6);
        for (int& v : values) v = 1 + static_cast<int>(rng() % 40);
        const int64_t deadline = rng() % 5 == 0
                                     ? b.clock()->NowMicros() + rng() % 300
                                     : Task::kNoDeadline;
        auto task = std::make_shared<CountTask>(
            TaskKey{&b, static_cast<int>(rng() % 2)}, values, deadline, &ends,
            &problems);
        created.fetch_add(1);
        all[c].push_back(task);
        const absl::Status s = b.Submit(task);
        if (!s.ok()) {
          task->Fail(s);  // the caller still owns a refused task
        } else if (rng() % 4 == 0) {
          b.Cancel(task);
        }
        if (i % 8 == 0) std::this_thread::yield();  // let the workers in
      }
    });
  }
  // Two concurrent shutdowns of the last batcher once the clients are half
  // way (or done: the wait is bounded by their work).
  auto half_way = [&] {
    while (created < 3 * per_client && created < 6 * per_client) {
      std::this_thread::yield();
    }
  };
  std::thread stop1([&] {
    half_way();
    batchers[2]->Shutdown(1000);
  });
  std::thread stop2([&] {
    half_way();
    batchers[2]->Shutdown(0);
  });
  for (auto& t : clients) t.join();
  stop1.join();
  stop2.join();
  for (auto& b : batchers) b->Shutdown(10'000'000);
  EXPECT_EQ(problems, 0);
  EXPECT_EQ(ends, created);
  for (const auto& tasks : all) {
    for (const auto& t : tasks) ASSERT_EQ(t->ended, 1);
  }
}

TEST(SchedulerStressTest, EveryTaskEndsOnceWhateverHappensMidFlight) {
  const char* env = std::getenv("CTXEMBED_STRESS_TASKS");
  const int per_client = env != nullptr ? std::atoi(env) : 3000;
  for (int round = 0; round < 10 && !HasFailure(); ++round) {
    RunRound(per_client);
  }
  // The mix the rounds produced, so a change that stops exercising a path
  // shows: every fate must have happened.
  for (absl::StatusCode code :
       {absl::StatusCode::kOk, absl::StatusCode::kCancelled,
        absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kUnavailable,
        absl::StatusCode::kResourceExhausted}) {
    const int n = by_code[static_cast<int>(code)];
    std::printf("%s: %d\n", absl::StatusCodeToString(code).c_str(), n);
    if (per_client >= 300) {
      EXPECT_GT(n, 0) << absl::StatusCodeToString(code);
    }
  }
}

}  // namespace
}  // namespace ctxembed
