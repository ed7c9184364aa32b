#include "scheduling/batch_queue.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace ctxembed {

absl::Status BatchQueue::Add(const std::shared_ptr<Task>& task,
                             int64_t now_micros) {
  if (task->size() > options_.max_queue_sentences) {
    // Would never fit, however long the client waited: not "retry later".
    return absl::OutOfRangeError(absl::StrCat(
        "this request has ", task->size(),
        " sentences; max_queue_sentences is ", options_.max_queue_sentences,
        ": send fewer inputs per request"));
  }
  if (size() + task->size() > options_.max_queue_sentences) {
    return absl::ResourceExhaustedError(
        absl::StrCat("server overloaded: ", size(),
                     " sentences are queued and this "
                     "request adds ",
                     task->size(), "; max_queue_sentences is ",
                     options_.max_queue_sentences, " (retry with backoff)"));
  }
  for (int i = 0; i < task->size(); ++i) {
    items_.push_back({task, i, task->length(i), now_micros});
  }
  return absl::OkStatus();
}

std::optional<Batch> BatchQueue::Take(int64_t now_micros, bool idle) {
  if (items_.empty()) return std::nullopt;
  if (options_.one_task_per_batch) return TakeOldestTask();
  const PendingItem& oldest = items_.front();
  const TaskKey& key = oldest.task->key();
  // Candidates: same key, closest length first, then oldest first.
  std::vector<size_t> candidates;
  for (size_t i = 1; i < items_.size(); ++i) {
    if (items_[i].task->key() == key) candidates.push_back(i);
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
    if (static_cast<int64_t>(longest) *
            static_cast<int64_t>(chosen.size() + 1) >
        options_.max_batch_tokens) {
      full = true;  // this one would not fit; a shorter one still might
      continue;
    }
    chosen.push_back(c);
    max_length = longest;
  }
  full =
      full || static_cast<int>(chosen.size()) == options_.max_batch_sentences;
  const bool waited_enough =
      now_micros - oldest.enqueued_micros >= options_.max_queue_delay_micros;
  if (!full && !idle && !waited_enough) return std::nullopt;

  std::sort(chosen.begin(), chosen.end());
  return Extract(chosen);
}

std::optional<Batch> BatchQueue::TakeOldestTask() {
  const Task* task = items_.front().task.get();
  std::vector<size_t> chosen;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (items_[i].task.get() == task) chosen.push_back(i);
  }
  return Extract(chosen);
}

Batch BatchQueue::Extract(const std::vector<size_t>& chosen) {
  Batch batch;
  for (size_t i : chosen) {
    batch.max_length = std::max(batch.max_length, items_[i].length);
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

std::vector<std::shared_ptr<Task>> BatchQueue::DropExpired(int64_t now_micros) {
  std::vector<std::shared_ptr<Task>> expired;
  absl::flat_hash_set<const Task*> seen;
  auto gone = [&](const PendingItem& p) {
    if (p.task->finished()) return true;
    if (p.task->deadline_micros() > now_micros) return false;
    if (seen.insert(p.task.get()).second) expired.push_back(p.task);
    return true;
  };
  items_.erase(std::remove_if(items_.begin(), items_.end(), gone),
               items_.end());
  return expired;
}

int BatchQueue::Remove(const Task* task) {
  const size_t before = items_.size();
  items_.erase(std::remove_if(
                   items_.begin(), items_.end(),
                   [&](const PendingItem& p) { return p.task.get() == task; }),
               items_.end());
  return static_cast<int>(before - items_.size());
}

std::vector<std::shared_ptr<Task>> BatchQueue::Clear() {
  std::vector<std::shared_ptr<Task>> tasks;
  absl::flat_hash_set<const Task*> seen;
  for (const PendingItem& p : items_) {
    if (seen.insert(p.task.get()).second) tasks.push_back(p.task);
  }
  items_.clear();
  return tasks;
}

int64_t BatchQueue::NextDueMicros() const {
  if (items_.empty()) return std::numeric_limits<int64_t>::max();
  return items_.front().enqueued_micros + options_.max_queue_delay_micros;
}

}  // namespace ctxembed
