#include "model/parallel_runner.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace ctxembed {
namespace {

// Long enough never to run out on a loaded machine when the code is right;
// it bounds only a failing run.
constexpr absl::Duration kPatience = absl::Seconds(20);

TEST(ParallelRunnerTest, RunsEachTaskOnceAndReturnsAfterBoth) {
  ParallelRunner runner;
  for (int i = 0; i < 200; ++i) {
    int a = 0, b = 0;
    runner.Run([&] { ++a; }, [&] { ++b; });
    ASSERT_EQ(a, 1);
    ASSERT_EQ(b, 1);  // written on whichever thread ran it, seen here
  }
}

// Holds the helper in a task until `release`: the first task of a Run on
// another thread waits until the second has started (on the helper, as the
// caller cannot take it back while its first task runs).
class HeldHelper {
 public:
  explicit HeldHelper(ParallelRunner& runner)
      : thread_([this, &runner] {
          runner.Run(
              [this] {
                ASSERT_TRUE(entered_.WaitForNotificationWithTimeout(kPatience));
              },
              [this] {
                helper_id_ = std::this_thread::get_id();
                entered_.Notify();
                release_.WaitForNotificationWithTimeout(kPatience);
              });
        }) {
    entered_.WaitForNotificationWithTimeout(kPatience);
  }
  ~HeldHelper() {
    Release();
    thread_.join();
  }
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }
  bool holding() const { return entered_.HasBeenNotified(); }
  std::thread::id helper_id() const { return helper_id_; }

 private:
  absl::Notification entered_, release_;
  std::thread::id helper_id_;
  std::thread thread_;
};

TEST(ParallelRunnerTest, ACallerRunsItsSecondTaskWhileTheHelperIsBusy) {
  ParallelRunner runner;
  HeldHelper held(runner);
  ASSERT_TRUE(held.holding());
  std::thread::id ran_on;
  bool b_done = false;
  runner.Run([] {},
             [&] {
               ran_on = std::this_thread::get_id();
               b_done = true;
             });
  // Returned with the helper still held: the caller took its task back.
  EXPECT_TRUE(b_done);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

// A task posted while the helper was busy is taken by the helper once it
// is free, while the caller still runs its first task: the first task here
// frees the helper and then waits for the second to start elsewhere.
TEST(ParallelRunnerTest, AHelperThatFreesUpTakesAWaitingTask) {
  ParallelRunner runner;
  HeldHelper held(runner);
  ASSERT_TRUE(held.holding());
  absl::Notification b_started;
  std::thread::id ran_on;
  bool started_in_time = false;
  runner.Run(
      [&] {
        held.Release();
        started_in_time = b_started.WaitForNotificationWithTimeout(kPatience);
      },
      [&] {
        ran_on = std::this_thread::get_id();
        b_started.Notify();
      });
  EXPECT_TRUE(started_in_time);
  EXPECT_EQ(ran_on, held.helper_id());
}

// Several callers at once, as the server's batch workers: every task runs
// exactly once and each Run returns only after both of its own.
TEST(ParallelRunnerTest, ConcurrentCallersEachGetBothTasksRunOnce) {
  ParallelRunner runner;
  constexpr int kCallers = 4, kRuns = 2000;
  std::vector<std::vector<int>> counts(kCallers, std::vector<int>(2 * kRuns));
  std::atomic<int> incomplete{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      std::vector<int>& mine = counts[c];
      for (int i = 0; i < kRuns; ++i) {
        runner.Run([&] { ++mine[2 * i]; }, [&] { ++mine[2 * i + 1]; });
        if (mine[2 * i] != 1 || mine[2 * i + 1] != 1) ++incomplete;
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(incomplete, 0);
  for (const auto& mine : counts) {
    for (int n : mine) ASSERT_EQ(n, 1);
  }
}

}  // namespace
}  // namespace ctxembed
