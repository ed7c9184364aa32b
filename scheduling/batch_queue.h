// The batching policy, without threads or clocks of its own: which waiting
// items (sentences) form the next batch, and when.
#ifndef CTXEMBED_SCHEDULING_BATCH_QUEUE_H_
#define CTXEMBED_SCHEDULING_BATCH_QUEUE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "scheduling/task.h"

namespace ctxembed {

// An item waiting for a batch.
struct PendingItem {
  std::shared_ptr<Task> task;
  int index = 0;   // within the task
  int length = 0;  // tokens
  int64_t enqueued_micros = 0;
};

// Items that run together (all with the same TaskKey).
struct Batch {
  std::vector<PendingItem> items;
  int max_length = 0;
  int real_tokens = 0;
  // The cost the token budget counts: longest sentence x sentences.
  int padded_tokens() const {
    return max_length * static_cast<int>(items.size());
  }
};

// Thread-compatible (the Scheduler guards it with its mutex).
//
// Policy: the oldest waiting sentence always goes into the next batch, so
// nothing starves; the rest of the batch is filled with sentences of the
// same key whose lengths are closest to the oldest's, to cut padding, up to
// max_batch_sentences and max_batch_tokens (padded). A batch is due when it
// is full, when its oldest sentence has waited max_queue_delay_micros, or at
// once when the caller says the workers are idle.
class BatchQueue {
 public:
  struct Options {
    // Most sentences in one batch.
    int max_batch_sentences = 32;
    // Most padded tokens (longest x count) in one batch; a single longer
    // sentence still runs, alone.
    int max_batch_tokens = 4096;
    // Longest a sentence waits for its batch to fill while other batches run.
    int64_t max_queue_delay_micros = 2000;
    // Most sentences waiting; requests beyond it are refused.
    int max_queue_sentences = 1024;
    // A batch holds the items of one task only, all of them (the unbatched
    // mode: each request runs on its own, still queued and scheduled).
    bool one_task_per_batch = false;
  };

  explicit BatchQueue(const Options& options) : options_(options) {}

  // Queues every item of `task`, or none: RESOURCE_EXHAUSTED naming the
  // limit when they do not fit.
  absl::Status Add(const std::shared_ptr<Task>& task, int64_t now_micros);

  // The next batch if one is due (see the class comment); `idle` means no
  // batch is running.
  std::optional<Batch> Take(int64_t now_micros, bool idle);

  // Removes the items of tasks that have finished (failed or cancelled
  // elsewhere) or whose deadline has passed; returns the latter, still
  // unfinished, for the caller to fail outside its lock.
  std::vector<std::shared_ptr<Task>> DropExpired(int64_t now_micros);

  // Removes `task`'s waiting items; returns how many.
  int Remove(const Task* task);

  // Empties the queue; returns the tasks that had items in it.
  std::vector<std::shared_ptr<Task>> Clear();

  // When the oldest sentence's delay runs out (max int64 when empty).
  int64_t NextDueMicros() const;
  int size() const { return static_cast<int>(items_.size()); }
  const Options& options() const { return options_; }

 private:
  // one_task_per_batch: all items of the oldest task, due at once.
  std::optional<Batch> TakeOldestTask();
  // Moves the items at `chosen` (ascending) into a batch.
  Batch Extract(const std::vector<size_t>& chosen);

  const Options options_;
  std::vector<PendingItem> items_;  // in arrival order
};

}  // namespace ctxembed

#endif  // CTXEMBED_SCHEDULING_BATCH_QUEUE_H_
