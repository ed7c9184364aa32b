// The shape of a batch of variable-length sentences, as PyTorch's packed
// sequences see it.
#ifndef CTXEMBED_MODEL_SEQUENCE_BATCH_H_
#define CTXEMBED_MODEL_SEQUENCE_BATCH_H_

#include <algorithm>
#include <numeric>
#include <vector>

#include "absl/types/span.h"

namespace ctxembed {

// Tokens of all sentences sit in one matrix, sentence after sentence (column
// offset(s) + t is token t of sentence s). For the recurrence, sentences are
// ordered longest first, so the sentences still running at step t are always
// the first active(t) of order(). Thread-compatible; reuse one per thread.
class SequenceBatch {
 public:
  // Sets the lengths; reuses storage (no allocation once warm).
  void Reset(absl::Span<const int> lengths) {
    lengths_.assign(lengths.begin(), lengths.end());
    const int n = static_cast<int>(lengths_.size());
    offsets_.resize(n + 1);
    offsets_[0] = 0;
    for (int s = 0; s < n; ++s) offsets_[s + 1] = offsets_[s] + lengths_[s];
    order_.resize(n);
    std::iota(order_.begin(), order_.end(), 0);
    std::stable_sort(order_.begin(), order_.end(),
                     [&](int a, int b) { return lengths_[a] > lengths_[b]; });
    const int max_len = n == 0 ? 0 : lengths_[order_[0]];
    active_.assign(max_len, 0);
    for (int len : lengths_) {
      for (int t = 0; t < len; ++t) ++active_[t];
    }
  }

  int size() const { return static_cast<int>(lengths_.size()); }
  int length(int s) const { return lengths_[s]; }
  int offset(int s) const { return offsets_[s]; }
  int total_tokens() const { return offsets_.back(); }
  int max_length() const { return static_cast<int>(active_.size()); }
  // Sentence indices, longest first (ties in input order).
  absl::Span<const int> order() const { return order_; }
  // Number of sentences with more than t tokens.
  int active(int t) const { return active_[t]; }

 private:
  std::vector<int> lengths_;
  std::vector<int> offsets_{0};
  std::vector<int> order_;
  std::vector<int> active_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_SEQUENCE_BATCH_H_
