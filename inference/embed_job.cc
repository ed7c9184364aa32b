#include "inference/embed_job.h"

#include <utility>

namespace ctxembed {
namespace {

TaskKey KeyOf(const EmbedJob::Spec& spec) {
  return {spec.tower,
          static_cast<int>(spec.pooling) * 2 + static_cast<int>(spec.kind)};
}

std::vector<int> LengthsOf(const std::vector<TokenList>& sentences) {
  std::vector<int> lengths;
  lengths.reserve(sentences.size());
  for (const TokenList& s : sentences) {
    lengths.push_back(static_cast<int>(s.size()));
  }
  return lengths;
}

}  // namespace

EmbedJob::EmbedJob(const Spec& spec, std::vector<TokenList> sentences,
                   int64_t deadline_micros, Done done)
    : Task(KeyOf(spec), LengthsOf(sentences), deadline_micros,
           [done = std::move(done)](Task& task, const absl::Status& status) {
             done(static_cast<EmbedJob&>(task), status);
           }),
      spec_(spec),
      sentences_(std::move(sentences)) {
  if (spec_.kind == Kind::kEmbed) {
    vectors_.resize(spec_.tower->output_dim(), size());
  } else {
    token_vectors_.resize(sentences_.size());
  }
}

void RunEmbedBatch(Batch& batch) {
  thread_local TowerScratch scratch;
  thread_local std::vector<TokenList> sentences;
  thread_local Eigen::MatrixXf out;
  const EmbedJob::Spec spec =
      static_cast<EmbedJob&>(*batch.items.front().task).spec();
  const int n = static_cast<int>(batch.items.size());
  auto job = [&](int k) -> EmbedJob& {
    return static_cast<EmbedJob&>(*batch.items[k].task);
  };
  sentences.resize(n);
  // Swap the tokens in and back out: no copies, no allocation per token.
  for (int k = 0; k < n; ++k) {
    sentences[k].swap(job(k).sentence(batch.items[k].index));
  }
  if (spec.kind == EmbedJob::Kind::kEmbed) {
    spec.tower->Embed(sentences, spec.pooling, scratch, &out);
    for (int k = 0; k < n; ++k) {
      job(k).vectors().col(batch.items[k].index) = out.col(k);
    }
  } else {
    const Eigen::MatrixXf& tokens =
        spec.tower->EncodeTokens(sentences, scratch);
    for (int k = 0; k < n; ++k) {
      job(k).token_vectors()[batch.items[k].index] =
          tokens.middleCols(scratch.batch.offset(k), scratch.batch.length(k));
    }
  }
  for (int k = 0; k < n; ++k) {
    sentences[k].swap(job(k).sentence(batch.items[k].index));
  }
}

void RunJobInline(const std::shared_ptr<EmbedJob>& job) {
  Batch batch;
  for (int i = 0; i < job->size(); ++i) {
    batch.items.push_back({job, i, job->length(i), 0});
  }
  RunEmbedBatch(batch);
  job->ItemsDone(job->size());
}

}  // namespace ctxembed
