// One request's share of the batcher's work: its tokenized sentences, the
// slots their results go to, and the callback that ends the request.
#ifndef CTXEMBED_SERVER_BATCH_JOB_H_
#define CTXEMBED_SERVER_BATCH_JOB_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "absl/status/status.h"
#include "model/pooling.h"
#include "model/tower.h"

namespace ctxembed {

// Thread-safe where noted. Workers write the results of distinct sentences
// concurrently; the done callback runs exactly once, on the thread that
// finishes the job (a worker, or the one that fails it), never under a
// batcher lock.
class BatchJob {
 public:
  enum class Kind { kEmbed, kEmbedTokens };
  // Sentences batch together only when their keys are equal.
  struct Key {
    const Tower* tower = nullptr;
    Pooling pooling = Pooling::kMean;
    Kind kind = Kind::kEmbed;
    bool operator==(const Key& o) const {
      return tower == o.tower && pooling == o.pooling && kind == o.kind;
    }
  };
  static constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();
  using Done = std::function<void(BatchJob& job, const absl::Status& status)>;

  // `sentences` must not be empty.
  BatchJob(const Key& key, std::vector<TokenList> sentences,
           int64_t deadline_micros, Done done);

  const Key& key() const { return key_; }
  int size() const { return static_cast<int>(sentences_.size()); }
  TokenList& sentence(int i) { return sentences_[i]; }
  int length(int i) const { return lengths_[i]; }
  int64_t deadline_micros() const { return deadline_micros_; }

  // Results: kEmbed fills vectors() column i ([output_dim x size]);
  // kEmbedTokens fills token_vectors()[i] ([token_dim x length(i)]).
  Eigen::MatrixXf& vectors() { return vectors_; }
  std::vector<Eigen::MatrixXf>& token_vectors() { return token_vectors_; }

  // Thread-safe. Records `count` finished sentences; the last one completes
  // the job with OK.
  void SentencesDone(int count);
  // Thread-safe. Completes the job with `status` unless it already has
  // completed; returns true if this call completed it.
  bool Fail(const absl::Status& status);
  // Thread-safe.
  bool finished() const { return finished_.load(std::memory_order_acquire); }

 private:
  bool Complete(const absl::Status& status);

  const Key key_;
  std::vector<TokenList> sentences_;
  std::vector<int> lengths_;  // constant: sentences_ may be swapped out
  const int64_t deadline_micros_;
  Done done_;
  Eigen::MatrixXf vectors_;
  std::vector<Eigen::MatrixXf> token_vectors_;
  std::atomic<int> remaining_;
  std::atomic<bool> finished_{false};
};

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_BATCH_JOB_H_
