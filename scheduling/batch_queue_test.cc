// The batching policy, deterministically: times are plain numbers.
#include "scheduling/batch_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ctxembed {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class BatchQueueTest : public ::testing::Test {
 protected:
  // A task whose items have these token counts.
  std::shared_ptr<Task> Job(std::vector<int> lengths,
                            int64_t deadline = Task::kNoDeadline,
                            int variant = 0) {
    return std::make_shared<Task>(
        TaskKey{&target_, variant}, std::move(lengths), deadline,
        [this](Task&, const absl::Status& s) { statuses_.push_back(s); });
  }

  static std::vector<int> Lengths(const Batch& b) {
    std::vector<int> out;
    for (const auto& p : b.items) out.push_back(p.length);
    return out;
  }

  int target_ = 0;  // what the tasks' keys point at
  std::vector<absl::Status> statuses_;
};

TEST_F(BatchQueueTest, IdleWorkersTakeWhatIsThereAtOnce) {
  BatchQueue q({.max_batch_sentences = 8, .max_queue_delay_micros = 1000});
  ASSERT_TRUE(q.Add(Job({3}), 100).ok());
  auto b = q.Take(100, /*idle=*/true);
  ASSERT_TRUE(b.has_value());
  EXPECT_THAT(Lengths(*b), ElementsAre(3));
  EXPECT_EQ(q.size(), 0);
  EXPECT_FALSE(q.Take(100, true).has_value());
}

TEST_F(BatchQueueTest, WhileBusyABatchWaitsForItsDelay) {
  BatchQueue q({.max_batch_sentences = 8, .max_queue_delay_micros = 1000});
  ASSERT_TRUE(q.Add(Job({3, 4}), 100).ok());
  ASSERT_TRUE(q.Add(Job({5}), 600).ok());
  EXPECT_FALSE(q.Take(1099, /*idle=*/false).has_value());
  EXPECT_EQ(q.NextDueMicros(), 1100);
  auto b = q.Take(1100, false);  // the oldest has waited 1000 us
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->items.size(), 3u);
}

TEST_F(BatchQueueTest, AFullBatchGoesAtOnce) {
  BatchQueue q({.max_batch_sentences = 4, .max_queue_delay_micros = 1000});
  ASSERT_TRUE(q.Add(Job({1, 2, 3, 4, 5, 6}), 100).ok());
  auto b = q.Take(100, /*idle=*/false);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->items.size(), 4u);
  EXPECT_EQ(q.size(), 2);
  EXPECT_FALSE(q.Take(100, false).has_value());  // 2 left, not full
}

TEST_F(BatchQueueTest, TheTokenBudgetCutsABatch) {
  BatchQueue q({.max_batch_sentences = 32, .max_batch_tokens = 20});
  ASSERT_TRUE(q.Add(Job({5, 5, 5, 5, 5}), 100).ok());
  auto b = q.Take(100, /*idle=*/false);  // full by tokens: 4 x 5 = 20
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->items.size(), 4u);
  EXPECT_EQ(b->padded_tokens(), 20);
  EXPECT_EQ(b->real_tokens, 20);
}

TEST_F(BatchQueueTest, SimilarLengthsGoTogether) {
  BatchQueue q({.max_batch_sentences = 3});
  ASSERT_TRUE(q.Add(Job({10, 2, 9, 3, 11, 1}), 100).ok());
  auto first = q.Take(100, true);
  ASSERT_TRUE(first.has_value());
  EXPECT_THAT(Lengths(*first), ElementsAre(10, 9, 11));  // in arrival order
  auto second = q.Take(100, true);
  EXPECT_THAT(Lengths(*second), ElementsAre(2, 3, 1));
  EXPECT_EQ(second->max_length, 3);
  EXPECT_EQ(second->real_tokens, 6);
}

TEST_F(BatchQueueTest, TheOldestNeverStarves) {
  BatchQueue q({.max_batch_sentences = 4, .max_batch_tokens = 50});
  ASSERT_TRUE(q.Add(Job({100}), 100).ok());  // longer than the budget
  ASSERT_TRUE(q.Add(Job({2, 2, 2, 2, 2}), 200).ok());
  auto b = q.Take(300, /*idle=*/false);
  ASSERT_TRUE(b.has_value());
  EXPECT_THAT(Lengths(*b), ElementsAre(100));  // alone, but first
  auto next = q.Take(300, false);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->items.size(), 4u);
}

TEST_F(BatchQueueTest, KeysDoNotMix) {
  BatchQueue q({.max_batch_sentences = 8});
  ASSERT_TRUE(q.Add(Job({1, 1}, Task::kNoDeadline, /*variant=*/1), 100).ok());
  ASSERT_TRUE(q.Add(Job({1}, Task::kNoDeadline, /*variant=*/2), 100).ok());
  auto b = q.Take(100, true);
  EXPECT_EQ(b->items.size(), 2u);
  EXPECT_EQ(b->items[0].task->key().variant, 1);
  b = q.Take(100, true);
  EXPECT_EQ(b->items[0].task->key().variant, 2);
}

TEST_F(BatchQueueTest, ExpiredWorkIsDroppedBeforeItRuns) {
  BatchQueue q({});
  auto late = Job({3, 3}, /*deadline=*/500);
  auto fine = Job({3}, /*deadline=*/5000);
  ASSERT_TRUE(q.Add(late, 100).ok());
  ASSERT_TRUE(q.Add(fine, 100).ok());
  EXPECT_TRUE(q.DropExpired(400).empty());
  std::vector<std::shared_ptr<Task>> expired = q.DropExpired(600);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0], late);
  EXPECT_EQ(q.size(), 1);
  auto b = q.Take(600, true);
  EXPECT_EQ(b->items[0].task, fine);
}

TEST_F(BatchQueueTest, CancellationRemovesTheJobsSentences) {
  BatchQueue q({});
  auto a = Job({1, 2, 3});
  auto b = Job({4});
  ASSERT_TRUE(q.Add(a, 100).ok());
  ASSERT_TRUE(q.Add(b, 100).ok());
  EXPECT_EQ(q.Remove(a.get()), 3);
  EXPECT_EQ(q.size(), 1);
  // A job finished elsewhere (e.g. cancelled) also leaves on the next sweep.
  b->Fail(absl::CancelledError("gone"));
  EXPECT_TRUE(q.DropExpired(100).empty());
  EXPECT_EQ(q.size(), 0);
}

TEST_F(BatchQueueTest, AFullQueueRefusesWholeRequests) {
  BatchQueue q({.max_queue_sentences = 4});
  ASSERT_TRUE(q.Add(Job({1, 1, 1}), 100).ok());
  absl::Status s = q.Add(Job({1, 1}), 100);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("3 sentences are queued and this request adds 2; "
                        "max_queue_sentences is 4"));
  EXPECT_EQ(q.size(), 3);  // nothing of the refused request was queued
  EXPECT_TRUE(q.Add(Job({1}), 100).ok());
}

TEST_F(BatchQueueTest, ARequestLargerThanTheQueueCanNeverFit) {
  BatchQueue q({.max_queue_sentences = 4});
  absl::Status s = q.Add(Job({1, 1, 1, 1, 1}), 100);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("this request has 5 sentences; max_queue_sentences "
                        "is 4"));
  EXPECT_EQ(q.size(), 0);
}

TEST_F(BatchQueueTest, ClearReturnsEveryWaitingJobOnce) {
  BatchQueue q({});
  auto a = Job({1, 2});
  auto b = Job({3});
  ASSERT_TRUE(q.Add(a, 1).ok());
  ASSERT_TRUE(q.Add(b, 1).ok());
  EXPECT_THAT(q.Clear(), ElementsAre(a, b));
  EXPECT_EQ(q.size(), 0);
}

TEST_F(BatchQueueTest, OneTaskPerBatchTakesWholeTasksInArrivalOrder) {
  BatchQueue q({.max_batch_sentences = 2,
                .max_queue_delay_micros = 1000,
                .one_task_per_batch = true});
  auto a = Job({5, 1, 7});  // more items than max_batch_sentences: still one
  auto b = Job({2});
  ASSERT_TRUE(q.Add(a, 100).ok());
  ASSERT_TRUE(q.Add(b, 100).ok());
  auto first = q.Take(100, /*idle=*/false);  // due at once, even when busy
  ASSERT_TRUE(first.has_value());
  EXPECT_THAT(Lengths(*first), ElementsAre(5, 1, 7));
  EXPECT_EQ(first->max_length, 7);
  EXPECT_EQ(first->real_tokens, 13);
  auto second = q.Take(100, false);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->items[0].task, b);
  EXPECT_EQ(q.size(), 0);
}

// Task::SetOnEnd runs its hook exactly once, before the done callback,
// whether it is set before the task ends or after (a task failed by a
// sibling while the batcher was queueing it).
TEST(TaskTest, OnEndRunsOnceWhenSetBeforeOrAfterTheEnd) {
  static const int key = 0;
  std::vector<std::string> events;
  Task before({&key, 0}, {2, 3}, Task::kNoDeadline,
              [&](Task&, const absl::Status&) { events.push_back("done"); });
  EXPECT_EQ(before.total_tokens(), 5);
  before.SetOnEnd([&] { events.push_back("end"); });
  before.ItemsDone(2);
  before.Fail(absl::CancelledError("late"));  // already ended: no effect
  EXPECT_THAT(events, ElementsAre("end", "done"));
  events.clear();
  Task after({&key, 0}, {1}, Task::kNoDeadline,
             [&](Task&, const absl::Status&) { events.push_back("done"); });
  after.Fail(absl::CancelledError("sibling failed"));
  after.SetOnEnd([&] { events.push_back("end"); });
  EXPECT_THAT(events, ElementsAre("done", "end"));
}

}  // namespace
}  // namespace ctxembed
