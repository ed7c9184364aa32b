#include "model/table_vectors.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/mapped_file.h"
#include "model/status_macros.h"

namespace ctxembed {

absl::StatusOr<std::unique_ptr<TableVectors>> TableVectors::Create(
    const SafeTensors& weights, const std::string& tensor,
    const std::string& vocab_path, const std::string& unk_token) {
  CTXEMBED_ASSIGN_OR_RETURN(std::string text, ReadFileToString(vocab_path));
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::unique_ptr<TableVectors> v(new TableVectors());
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::string_view token = absl::StripSuffix(lines[i], "\r");
    if (!v->ids_.emplace(std::string(token), static_cast<int>(i)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(vocab_path, ": line ", i + 1, ": token \"", token,
                       "\" is already on an earlier line"));
    }
  }
  CTXEMBED_ASSIGN_OR_RETURN(const SafeTensors::TensorInfo* info,
                            weights.Info(tensor));
  if (info->shape.size() != 2 ||
      info->shape[0] != static_cast<int64_t>(lines.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights.name(), ": tensor ", tensor, ": expected shape [",
                     lines.size(), ", dim] (one row per line of ", vocab_path,
                     "), got ", ShapeString(info->shape)));
  }
  CTXEMBED_ASSIGN_OR_RETURN(
      v->table_, weights.ReadMatrix(tensor, info->shape[0], info->shape[1]));
  if (!unk_token.empty()) {
    auto it = v->ids_.find(unk_token);
    if (it == v->ids_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(vocab_path, ": unk_token \"", unk_token,
                       "\" is not in the vocabulary"));
    }
    v->unk_ = it->second;
  }
  return v;
}

void TableVectors::Lookup(absl::string_view word, float* out) const {
  auto it = ids_.find(word);
  const int row = it != ids_.end() ? it->second : unk_;
  if (row < 0) {
    std::fill(out, out + dim(), 0.0f);
    return;
  }
  std::memcpy(out, table_.row(row).data(), sizeof(float) * dim());
}

}  // namespace ctxembed
