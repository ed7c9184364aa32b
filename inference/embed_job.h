// An Embed / EmbedTokens request's work as a scheduler Task: its tokenized
// sentences, the slots their results go to, and the batch function that
// runs a batch of them through a model's tower.
#ifndef CTXEMBED_INFERENCE_EMBED_JOB_H_
#define CTXEMBED_INFERENCE_EMBED_JOB_H_

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/pooling.h"
#include "model/tower.h"
#include "scheduling/batch_queue.h"
#include "scheduling/task.h"

namespace ctxembed {

// Thread-safe where Task is. Workers write the results of distinct
// sentences concurrently.
class EmbedJob : public Task {
 public:
  enum class Kind { kEmbed, kEmbedTokens };
  // What the sentences run through; sentences batch together only when
  // their specs are equal.
  struct Spec {
    const Tower* tower = nullptr;
    Pooling pooling = Pooling::kMean;  // kEmbed only
    Kind kind = Kind::kEmbed;
  };
  using Done = std::function<void(EmbedJob& job, const absl::Status& status)>;

  // `sentences` must not be empty; `spec.tower` must outlive the job.
  EmbedJob(const Spec& spec, std::vector<TokenList> sentences,
           int64_t deadline_micros, Done done);

  const Spec& spec() const { return spec_; }
  TokenList& sentence(int i) { return sentences_[i]; }

  // Results: kEmbed fills vectors() column i ([output_dim x size]);
  // kEmbedTokens fills token_vectors()[i] ([token_dim x length(i)]).
  Eigen::MatrixXf& vectors() { return vectors_; }
  std::vector<Eigen::MatrixXf>& token_vectors() { return token_vectors_; }

 private:
  const Spec spec_;
  std::vector<TokenList> sentences_;  // swapped out while a batch runs
  Eigen::MatrixXf vectors_;
  std::vector<Eigen::MatrixXf> token_vectors_;
};

// The BatchFunction of every model: runs the sentences of `batch` (items of
// EmbedJobs with equal specs) through their tower with a per-thread scratch
// and stores the results in the jobs.
void RunEmbedBatch(Batch& batch);

// Runs every sentence of `job` on the calling thread, as one batch, and
// completes it (for callers without a scheduler: tools and tests).
void RunJobInline(const std::shared_ptr<EmbedJob>& job);

}  // namespace ctxembed

#endif  // CTXEMBED_INFERENCE_EMBED_JOB_H_
