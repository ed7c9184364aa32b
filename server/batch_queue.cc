#include "server/batch_queue.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace ctxembed {

absl::Status BatchQueue::Add(const std::shared_ptr<BatchJob>& job,
                             int64_t now_micros) {
  if (size() + job->size() > options_.max_queue_sentences) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "server overloaded: ", size(), " sentences are queued and this "
        "request adds ", job->size(), "; max_queue_sentences is ",
        options_.max_queue_sentences, " (retry with backoff)"));
  }
  for (int i = 0; i < job->size(); ++i) {
    items_.push_back({job, i, job->length(i), now_micros});
  }
  return absl::OkStatus();
}

std::optional<Batch> BatchQueue::Take(int64_t now_micros, bool idle) {
  if (items_.empty()) return std::nullopt;
  const PendingSentence& oldest = items_.front();
  const BatchJob::Key& key = oldest.job->key();
  // Candidates: same key, closest length first, then oldest first.
  std::vector<size_t> candidates;
  for (size_t i = 1; i < items_.size(); ++i) {
    if (items_[i].job->key() == key) candidates.push_back(i);
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](size_t a, size_t b) {
                     return std::abs(items_[a].length - oldest.length) <
                            std::abs(items_[b].length - oldest.length);
                   });
  std::vector<size_t> chosen = {0};
  int max_length = oldest.length;
  bool full = false;
  for (size_t c : candidates) {
    if (static_cast<int>(chosen.size()) == options_.max_batch_sentences) {
      full = true;
      break;
    }
    const int longest = std::max(max_length, items_[c].length);
    if (static_cast<int64_t>(longest) * (chosen.size() + 1) >
        options_.max_batch_tokens) {
      full = true;  // this one would not fit; a shorter one still might
      continue;
    }
    chosen.push_back(c);
    max_length = longest;
  }
  full = full || static_cast<int>(chosen.size()) == options_.max_batch_sentences;
  const bool waited_enough =
      now_micros - oldest.enqueued_micros >= options_.max_queue_delay_micros;
  if (!full && !idle && !waited_enough) return std::nullopt;

  Batch batch;
  batch.max_length = max_length;
  std::sort(chosen.begin(), chosen.end());
  for (size_t i : chosen) {
    batch.real_tokens += items_[i].length;
    batch.items.push_back(std::move(items_[i]));
  }
  // Erase the chosen slots (moved-from) keeping arrival order.
  size_t next = 0, out = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (next < chosen.size() && chosen[next] == i) {
      ++next;
      continue;
    }
    if (out != i) items_[out] = std::move(items_[i]);
    ++out;
  }
  items_.resize(out);
  return batch;
}

std::vector<std::shared_ptr<BatchJob>> BatchQueue::DropExpired(
    int64_t now_micros) {
  std::vector<std::shared_ptr<BatchJob>> expired;
  absl::flat_hash_set<const BatchJob*> seen;
  auto gone = [&](const PendingSentence& p) {
    if (p.job->finished()) return true;
    if (p.job->deadline_micros() > now_micros) return false;
    if (seen.insert(p.job.get()).second) expired.push_back(p.job);
    return true;
  };
  items_.erase(std::remove_if(items_.begin(), items_.end(), gone),
               items_.end());
  return expired;
}

int BatchQueue::Remove(const BatchJob* job) {
  const size_t before = items_.size();
  items_.erase(std::remove_if(items_.begin(), items_.end(),
                              [&](const PendingSentence& p) {
                                return p.job.get() == job;
                              }),
               items_.end());
  return static_cast<int>(before - items_.size());
}

std::vector<std::shared_ptr<BatchJob>> BatchQueue::Clear() {
  std::vector<std::shared_ptr<BatchJob>> jobs;
  absl::flat_hash_set<const BatchJob*> seen;
  for (const PendingSentence& p : items_) {
    if (seen.insert(p.job.get()).second) jobs.push_back(p.job);
  }
  items_.clear();
  return jobs;
}

int64_t BatchQueue::NextDueMicros() const {
  if (items_.empty()) return std::numeric_limits<int64_t>::max();
  return items_.front().enqueued_micros + options_.max_queue_delay_micros;
}

}  // namespace ctxembed
