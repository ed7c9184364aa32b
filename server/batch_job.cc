#include "server/batch_job.h"

namespace ctxembed {

BatchJob::BatchJob(const Key& key, std::vector<TokenList> sentences,
                   int64_t deadline_micros, Done done)
    : key_(key),
      sentences_(std::move(sentences)),
      deadline_micros_(deadline_micros),
      done_(std::move(done)),
      remaining_(static_cast<int>(sentences_.size())) {
  lengths_.reserve(sentences_.size());
  for (const TokenList& s : sentences_) {
    lengths_.push_back(static_cast<int>(s.size()));
  }
  if (key_.kind == Kind::kEmbed) {
    vectors_.resize(key_.tower->output_dim(), size());
  } else {
    token_vectors_.resize(sentences_.size());
  }
}

void BatchJob::SentencesDone(int count) {
  // acq_rel: the last decrement sees every worker's result writes.
  if (remaining_.fetch_sub(count, std::memory_order_acq_rel) == count) {
    Complete(absl::OkStatus());
  }
}

bool BatchJob::Fail(const absl::Status& status) { return Complete(status); }

bool BatchJob::Complete(const absl::Status& status) {
  if (finished_.exchange(true, std::memory_order_acq_rel)) return false;
  Done done = std::move(done_);
  done(*this, status);
  return true;
}

}  // namespace ctxembed
