#include "model/sif_weights.h"

#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/mapped_file.h"
#include "model/safetensors.h"
#include "model/status_macros.h"

namespace ctxembed {
namespace {

std::string ResolvePath(const std::string& dir, const std::string& file) {
  return !file.empty() && file[0] == '/' ? file : absl::StrCat(dir, "/", file);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SifWeights>> SifWeights::Create(
    const SifConfig& config, const WordVectors& vectors, int token_dim,
    const std::string& model_dir) {
  std::unique_ptr<SifWeights> w(new SifWeights());
  w->a_ = config.a;
  if (!config.counts.empty()) {
    CTXEMBED_RETURN_IF_ERROR(
        w->LoadCounts(ResolvePath(model_dir, config.counts)));
  } else if (vectors.has_counts()) {
    w->vectors_ = &vectors;
    w->total_ = static_cast<double>(vectors.total_count());
  } else {
    return absl::FailedPreconditionError(
        absl::StrCat("sif pooling needs word counts: ", vectors.format(),
                     " vectors record none; name a counts file in \"sif\": "
                     "{\"counts\": ...}"));
  }
  if (!(w->total_ > 0)) {
    return absl::InvalidArgumentError(
        "sif pooling: the word counts add up to 0");
  }
  if (!config.components.empty()) {
    CTXEMBED_RETURN_IF_ERROR(w->LoadComponents(
        ResolvePath(model_dir, config.components), token_dim));
  }
  return w;
}

absl::Status SifWeights::LoadCounts(const std::string& path) {
  CTXEMBED_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(file->data(), '\n')) {
    ++line_no;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    int64_t count = 0;
    if (fields.size() != 2 || !absl::SimpleAtoi(fields[1], &count) ||
        count < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": line ", line_no,
                       ": expected \"word count\" with a count >= 0"));
    }
    if (!file_counts_.emplace(std::string(fields[0]), count).second) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": line ", line_no,
                                                     ": word \"", fields[0],
                                                     "\" is listed twice"));
    }
    total_ += static_cast<double>(count);
  }
  return absl::OkStatus();
}

absl::Status SifWeights::LoadComponents(const std::string& path,
                                        int token_dim) {
  CTXEMBED_ASSIGN_OR_RETURN(auto tensors, SafeTensors::Open(path));
  CTXEMBED_ASSIGN_OR_RETURN(const SafeTensors::TensorInfo* info,
                            tensors->Info("components"));
  if (info->shape.size() != 2 || info->shape[1] != token_dim ||
      info->shape[0] < 1 || info->shape[0] > token_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": tensor components: expected shape [k, ", token_dim,
        "] with 1 <= k <= ", token_dim, ", got ", ShapeString(info->shape)));
  }
  CTXEMBED_ASSIGN_OR_RETURN(
      RowMatrixXf c,
      tensors->ReadMatrix("components", info->shape[0], token_dim));
  for (Eigen::Index k = 0; k < c.rows(); ++k) {
    const double norm = c.row(k).cast<double>().norm();
    if (!(std::abs(norm - 1.0) < 1e-3)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor components: row ", k, " has norm ", norm,
                       "; components must be unit vectors"));
    }
  }
  for (Eigen::Index i = 0; i < c.rows(); ++i) {
    for (Eigen::Index j = 0; j < i; ++j) {
      const double dot = c.row(i).cast<double>().dot(c.row(j).cast<double>());
      if (!(std::abs(dot) < 1e-3)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": tensor components: rows ", j, " and ", i,
                         " are not orthogonal (dot product ", dot, ")"));
      }
    }
  }
  components_ = c;
  return absl::OkStatus();
}

float SifWeights::Weight(absl::string_view token) const {
  int64_t count = 0;
  if (vectors_ != nullptr) {
    count = vectors_->Count(token);
  } else if (auto it = file_counts_.find(token); it != file_counts_.end()) {
    count = it->second;
  }
  return static_cast<float>(a_ / (a_ + static_cast<double>(count) / total_));
}

void SifWeights::Pool(const Eigen::Ref<const Eigen::MatrixXf>& tokens,
                      absl::Span<const std::string> words,
                      Eigen::Ref<Eigen::VectorXf> out) const {
  out.setZero();
  const Eigen::Index n = tokens.cols();
  if (n == 0) return;
  for (Eigen::Index t = 0; t < n; ++t) {
    out += Weight(words[t]) * tokens.col(t);
  }
  out *= 1.0f / static_cast<float>(n);
  for (Eigen::Index k = 0; k < components_.rows(); ++k) {
    const float dot = components_.row(k).dot(out);
    out -= dot * components_.row(k).transpose();
  }
}

}  // namespace ctxembed
