// The batching policy, without threads or clocks of its own: which waiting
// sentences form the next batch, and when.
#ifndef CTXEMBED_SERVER_BATCH_QUEUE_H_
#define CTXEMBED_SERVER_BATCH_QUEUE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "server/batch_job.h"

namespace ctxembed {

// A sentence waiting for a batch.
struct PendingSentence {
  std::shared_ptr<BatchJob> job;
  int index = 0;   // within the job
  int length = 0;  // tokens
  int64_t enqueued_micros = 0;
};

// Sentences that run together (all with the same BatchJob::Key).
struct Batch {
  std::vector<PendingSentence> items;
  int max_length = 0;
  int real_tokens = 0;
  // The cost the token budget counts: longest sentence x sentences.
  int padded_tokens() const {
    return max_length * static_cast<int>(items.size());
  }
};

// Thread-compatible (the Batcher guards it with its mutex).
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
  };

  explicit BatchQueue(const Options& options) : options_(options) {}

  // Queues every sentence of `job`, or none: RESOURCE_EXHAUSTED naming the
  // limit when they do not fit.
  absl::Status Add(const std::shared_ptr<BatchJob>& job, int64_t now_micros);

  // The next batch if one is due (see the class comment); `idle` means no
  // batch is running.
  std::optional<Batch> Take(int64_t now_micros, bool idle);

  // Removes the sentences of jobs that have finished (failed or cancelled
  // elsewhere) or whose deadline has passed; returns the latter, still
  // unfinished, for the caller to fail outside its lock.
  std::vector<std::shared_ptr<BatchJob>> DropExpired(int64_t now_micros);

  // Removes `job`'s waiting sentences; returns how many.
  int Remove(const BatchJob* job);

  // Empties the queue; returns the jobs that had sentences in it.
  std::vector<std::shared_ptr<BatchJob>> Clear();

  // When the oldest sentence's delay runs out (max int64 when empty).
  int64_t NextDueMicros() const;
  int size() const { return static_cast<int>(items_.size()); }
  const Options& options() const { return options_; }

 private:
  const Options options_;
  std::vector<PendingSentence> items_;  // in arrival order
};

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_BATCH_QUEUE_H_
