// Several batchers on one shared Scheduler: no threads per model, queues
// served in turn, one queue's shutdown leaving the others serving.
#include "scheduling/scheduler.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "scheduling/batcher.h"
#include "scheduling/mutex.h"

namespace ctxembed {
namespace {

// Threads of this process, from /proc.
int ThreadCount() {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n;
}

// Records, in order, the names of the tasks that finished.
class Log {
 public:
  void Add(const std::string& name) {
    MutexLock lock(&mu_);
    names_.push_back(name);
  }
  std::vector<std::string> names() {
    MutexLock lock(&mu_);
    return names_;
  }

 private:
  Mutex mu_;
  std::vector<std::string> names_ ABSL_GUARDED_BY(mu_);
};

void Nothing(Batch&) {}

std::shared_ptr<Task> Named(const std::string& name, Log* log,
                            Notification* done = nullptr) {
  return std::make_shared<Task>(
      TaskKey{}, std::vector<int>{1}, Task::kNoDeadline,
      [name, log, done](Task&, const absl::Status& s) {
        log->Add(s.ok() ? name : name + ":" + std::string(s.message()));
        if (done != nullptr) done->Notify();
      });
}

TEST(SchedulerTest, BatchersShareTheWorkersInsteadOfAddingThreads) {
  auto scheduler = Scheduler::Create({.num_workers = 2});
  ASSERT_TRUE(scheduler.ok());
  const int before = ThreadCount();
  ASSERT_GT(before, 0);
  std::vector<std::unique_ptr<Batcher>> batchers;
  for (int i = 0; i < 3; ++i) {
    auto b = Batcher::Create({}, Nothing, nullptr, *scheduler);
    ASSERT_TRUE(b.ok());
    batchers.push_back(*std::move(b));
  }
  Log log;
  std::vector<Notification> done(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(batchers[i]
                    ->Submit(Named("m" + std::to_string(i), &log, &done[i]))
                    .ok());
  }
  for (auto& d : done) d.WaitForNotification();
  EXPECT_EQ(ThreadCount(), before);  // three models, still two workers
  EXPECT_THAT(log.names(), ::testing::UnorderedElementsAre("m0", "m1", "m2"));
}

TEST(SchedulerTest, QueuesAreServedInTurn) {
  auto scheduler = Scheduler::Create({.num_workers = 1});
  ASSERT_TRUE(scheduler.ok());
  const Batcher::Options one_at_a_time = {
      .queue = {.max_batch_sentences = 1, .max_queue_delay_micros = 0}};
  auto busy = Batcher::Create(one_at_a_time, Nothing, nullptr, *scheduler);
  auto quiet = Batcher::Create(one_at_a_time, Nothing, nullptr, *scheduler);
  ASSERT_TRUE(busy.ok() && quiet.ok());
  // Hold the one worker in a done callback while both queues fill.
  Log log;
  Notification entered, release;
  // Released whichever way the test leaves, so no assertion hangs it.
  auto guard = std::shared_ptr<void>(nullptr, [&](void*) {
    if (!release.HasBeenNotified()) release.Notify();
  });
  auto blocker =
      std::make_shared<Task>(TaskKey{}, std::vector<int>{1}, Task::kNoDeadline,
                             [&](Task&, const absl::Status&) {
                               entered.Notify();
                               release.WaitForNotification();
                             });
  ASSERT_TRUE((*busy)->Submit(blocker).ok());
  entered.WaitForNotification();
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE((*busy)->Submit(Named("busy" + std::to_string(i), &log)).ok());
  }
  ASSERT_TRUE((*quiet)->Submit(Named("quiet", &log)).ok());
  release.Notify();
  (*busy)->Shutdown(10'000'000);
  (*quiet)->Shutdown(10'000'000);
  // The quiet model's one request ran after at most one of the busy
  // model's, not after all eight.
  const std::vector<std::string> order = log.names();
  ASSERT_EQ(order.size(), 9u);
  const auto quiet_at = std::find(order.begin(), order.end(), "quiet");
  ASSERT_NE(quiet_at, order.end());
  EXPECT_LE(quiet_at - order.begin(), 1);
}

TEST(SchedulerTest, OneBatcherShuttingDownLeavesTheOthersServing) {
  auto scheduler = Scheduler::Create({.num_workers = 1});
  ASSERT_TRUE(scheduler.ok());
  auto a = Batcher::Create({}, Nothing, nullptr, *scheduler);
  auto b = Batcher::Create({}, Nothing, nullptr, *scheduler);
  ASSERT_TRUE(a.ok() && b.ok());
  Log log;
  (*a)->Shutdown(0);
  EXPECT_EQ((*a)->Submit(Named("a", &log)).code(),
            absl::StatusCode::kUnavailable);
  a->reset();  // unregisters from the scheduler
  Notification done;
  ASSERT_TRUE((*b)->Submit(Named("b", &log, &done)).ok());
  done.WaitForNotification();
  EXPECT_THAT(log.names(), ::testing::ElementsAre("b"));
}

TEST(SchedulerTest, DestroyingTheLastReferenceFailsWhatNoBatcherDrained) {
  Log log;
  {
    auto scheduler = Scheduler::Create({.num_workers = 1});
    ASSERT_TRUE(scheduler.ok());
    auto b = Batcher::Create({}, Nothing, nullptr, *scheduler);
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE((*b)->Submit(Named("t", &log)).ok());
    // The batcher's destructor drains with no time left, then the
    // scheduler's joins its worker: the task ends either way.
  }
  ASSERT_EQ(log.names().size(), 1u);
  EXPECT_THAT(log.names()[0],
              ::testing::AnyOf("t", ::testing::HasSubstr("shut down")));
}

TEST(SchedulerTest, RejectsNegativeWorkers) {
  EXPECT_EQ(Scheduler::Create({.num_workers = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ctxembed
