#include "model/fasttext_vectors.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "model/byte_reader.h"
#include "model/status_macros.h"

namespace ctxembed {
namespace {

constexpr int32_t kMagic = 793712314;
constexpr int32_t kMinVersion = 11;
constexpr int32_t kMaxVersion = 12;
constexpr int32_t kMaxDim = 1 << 16;
constexpr int32_t kModelSupervised = 3;
constexpr absl::string_view kEos = "</s>";
// A dictionary entry is at least a NUL, an int64 count and an int8 type.
constexpr size_t kMinEntryBytes = 10;

// Reads fastText's Args block (12 int32 fields and a double).
absl::Status ReadArgs(ByteReader& in, FastTextArgs* args) {
  int32_t ignored = 0;
  double t = 0;
  CTXEMBED_RETURN_IF_ERROR(in.Read(&args->dim, "args.dim"));
  for (const char* f : {"args.ws", "args.epoch", "args.minCount", "args.neg",
                        "args.wordNgrams"}) {
    CTXEMBED_RETURN_IF_ERROR(in.Read(&ignored, f));
  }
  CTXEMBED_RETURN_IF_ERROR(in.Read(&args->loss, "args.loss"));
  CTXEMBED_RETURN_IF_ERROR(in.Read(&args->model, "args.model"));
  CTXEMBED_RETURN_IF_ERROR(in.Read(&args->bucket, "args.bucket"));
  CTXEMBED_RETURN_IF_ERROR(in.Read(&args->minn, "args.minn"));
  CTXEMBED_RETURN_IF_ERROR(in.Read(&args->maxn, "args.maxn"));
  CTXEMBED_RETURN_IF_ERROR(in.Read(&ignored, "args.lrUpdateRate"));
  CTXEMBED_RETURN_IF_ERROR(in.Read(&t, "args.t"));
  if (args->dim < 1 || args->dim > kMaxDim) {
    return in.Error(
        absl::StrCat("dim ", args->dim, " is outside [1, ", kMaxDim, "]"));
  }
  if (args->model < 1 || args->model > 3 || args->loss < 1 || args->loss > 4) {
    return in.Error(absl::StrCat("unknown model ", args->model, " or loss ",
                                 args->loss, " (not a fastText header)"));
  }
  if (args->version == 11 && args->model == kModelSupervised) {
    args->maxn = 0;  // fastText: version-11 classifiers had no char n-grams
  }
  if (args->bucket < 0 || args->minn < 0 || args->maxn < 0) {
    return in.Error(absl::StrCat("negative bucket ", args->bucket, ", minn ",
                                 args->minn, " or maxn ", args->maxn));
  }
  if (args->maxn > 0 && args->bucket == 0) {
    return in.Error("char n-grams are on (maxn > 0) but bucket is 0");
  }
  return absl::OkStatus();
}

// Reads an int64 matrix shape and checks it against the expected columns
// and the bytes left, so a corrupt header cannot make us allocate.
absl::Status ReadMatrixShape(ByteReader& in, absl::string_view what,
                             int32_t dim, int64_t* rows) {
  int64_t cols = 0;
  CTXEMBED_RETURN_IF_ERROR(in.Read(rows, absl::StrCat(what, " rows")));
  CTXEMBED_RETURN_IF_ERROR(in.Read(&cols, absl::StrCat(what, " columns")));
  if (cols != dim) {
    return in.Error(absl::StrCat(what, " has ", cols,
                                 " columns; the header says dim ", dim));
  }
  if (*rows < 0 ||
      static_cast<uint64_t>(*rows) >
          in.remaining() / sizeof(float) / static_cast<uint64_t>(dim)) {
    return in.Error(absl::StrCat(what, " claims ", *rows, " x ", cols,
                                 " floats; only ", in.remaining(),
                                 " bytes are left in the file"));
  }
  return absl::OkStatus();
}

}  // namespace

uint32_t FastTextHash(absl::string_view bytes) {
  uint32_t h = 2166136261u;
  for (char c : bytes) {
    h = (h ^ static_cast<uint32_t>(static_cast<int8_t>(c))) * 16777619u;
  }
  return h;
}

absl::StatusOr<std::unique_ptr<FastTextVectors>> FastTextVectors::Parse(
    absl::string_view data, const std::string& name) {
  ByteReader in(data, name);
  int32_t magic = 0;
  std::unique_ptr<FastTextVectors> v(new FastTextVectors());
  CTXEMBED_RETURN_IF_ERROR(in.Read(&magic, "the magic number"));
  if (magic != kMagic) {
    return in.Error(
        absl::StrCat("magic number ", magic, " is not fastText's ", kMagic));
  }
  CTXEMBED_RETURN_IF_ERROR(in.Read(&v->args_.version, "the format version"));
  if (v->args_.version < kMinVersion || v->args_.version > kMaxVersion) {
    return in.Error(absl::StrCat("unsupported fastText format version ",
                                 v->args_.version, " (supported: 11 and 12)"));
  }
  CTXEMBED_RETURN_IF_ERROR(ReadArgs(in, &v->args_));

  // Dictionary.
  int32_t size = 0, nlabels = 0;
  int64_t ntokens = 0, prune_size = 0;
  CTXEMBED_RETURN_IF_ERROR(in.Read(&size, "dictionary size"));
  CTXEMBED_RETURN_IF_ERROR(in.Read(&v->nwords_, "dictionary nwords"));
  CTXEMBED_RETURN_IF_ERROR(in.Read(&nlabels, "dictionary nlabels"));
  CTXEMBED_RETURN_IF_ERROR(in.Read(&ntokens, "dictionary ntokens"));
  CTXEMBED_RETURN_IF_ERROR(in.Read(&prune_size, "dictionary pruneidx_size"));
  if (size < 0 || v->nwords_ < 0 || nlabels < 0 ||
      static_cast<int64_t>(v->nwords_) + nlabels != size) {
    return in.Error(absl::StrCat("dictionary sizes disagree: size ", size,
                                 ", nwords ", v->nwords_, ", nlabels ",
                                 nlabels));
  }
  if (static_cast<uint64_t>(size) > in.remaining() / kMinEntryBytes) {
    return in.Error(absl::StrCat("dictionary claims ", size,
                                 " entries; the file is too short for them"));
  }
  v->ids_.reserve(size);
  v->counts_.reserve(size);
  for (int32_t i = 0; i < size; ++i) {
    absl::string_view word;
    int64_t count = 0;
    int8_t type = 0;
    CTXEMBED_RETURN_IF_ERROR(in.ReadCString(&word, "a dictionary word"));
    CTXEMBED_RETURN_IF_ERROR(in.Read(&count, "a dictionary count"));
    CTXEMBED_RETURN_IF_ERROR(in.Read(&type, "a dictionary entry type"));
    if (type != (i < v->nwords_ ? 0 : 1)) {
      return in.Error(absl::StrCat("dictionary entry ", i, " has type ",
                                   static_cast<int>(type),
                                   "; words (0) must "
                                   "come before labels (1)"));
    }
    if (count < 0) {
      return in.Error(absl::StrCat("dictionary entry ", i, " has count ", count,
                                   "; counts cannot be negative"));
    }
    v->ids_.emplace(std::string(word), i);  // first of duplicates wins
    v->counts_.push_back(count);
    // Saturates rather than overflows on a hostile file.
    if (i < v->nwords_) {
      v->total_count_ = count > INT64_MAX - v->total_count_
                            ? INT64_MAX
                            : v->total_count_ + count;
    }
  }
  CTXEMBED_RETURN_IF_ERROR(v->ParsePruneIndex(in, prune_size));
  CTXEMBED_RETURN_IF_ERROR(v->ParseMatrices(in));
  return v;
}

absl::Status FastTextVectors::ParsePruneIndex(ByteReader& in,
                                              int64_t prune_size) {
  if (prune_size < -1 || (prune_size > 0 && static_cast<uint64_t>(prune_size) >
                                                in.remaining() / 8)) {
    return in.Error(
        absl::StrCat("pruneidx_size ", prune_size, " does not fit the file"));
  }
  pruned_ = prune_size >= 0;
  for (int64_t i = 0; i < prune_size; ++i) {
    int32_t from = 0, to = 0;
    CTXEMBED_RETURN_IF_ERROR(in.Read(&from, "a pruneidx entry"));
    CTXEMBED_RETURN_IF_ERROR(in.Read(&to, "a pruneidx entry"));
    if (to < 0) return in.Error("negative pruneidx target");
    prune_index_[from] = to;
  }
  return absl::OkStatus();
}

absl::Status FastTextVectors::ParseMatrices(ByteReader& in) {
  bool quant_input = false;
  CTXEMBED_RETURN_IF_ERROR(in.ReadBool(&quant_input, "the quant_input flag"));
  if (quant_input) {
    return in.Error(
        "quantized model (.ftz); ctxembed needs the dense .bin model");
  }
  CTXEMBED_RETURN_IF_ERROR(
      ReadMatrixShape(in, "input matrix", args_.dim, &rows_));
  const int64_t expected_rows =
      pruned_ ? static_cast<int64_t>(nwords_) +
                    static_cast<int64_t>(prune_index_.size())
              : static_cast<int64_t>(nwords_) + args_.bucket;
  if (rows_ != expected_rows && !(pruned_ && rows_ >= nwords_)) {
    return in.Error(absl::StrCat("input matrix has ", rows_,
                                 " rows; nwords + bucket is ", expected_rows));
  }
  for (const auto& [from, to] : prune_index_) {
    if (nwords_ + static_cast<int64_t>(to) >= rows_) {
      return in.Error(
          absl::StrCat("pruneidx target ", to, " is past the input matrix"));
    }
  }
  absl::string_view bytes;
  const size_t n = static_cast<size_t>(rows_) * args_.dim;
  CTXEMBED_RETURN_IF_ERROR(
      in.ReadBytes(n * sizeof(float), &bytes, "the input matrix"));
  input_.resize(n);
  if (n > 0) std::memcpy(input_.data(), bytes.data(), bytes.size());

  // The output matrix is not needed for word vectors, but a file cut short
  // there is still a broken file.
  bool quant_output = false;
  int64_t out_rows = 0;
  CTXEMBED_RETURN_IF_ERROR(in.ReadBool(&quant_output, "the qout flag"));
  CTXEMBED_RETURN_IF_ERROR(
      ReadMatrixShape(in, "output matrix", args_.dim, &out_rows));
  CTXEMBED_RETURN_IF_ERROR(
      in.ReadBytes(static_cast<size_t>(out_rows) * args_.dim * sizeof(float),
                   &bytes, "the output matrix"));
  if (in.remaining() != 0) {
    return in.Error(absl::StrCat(in.remaining(),
                                 " unexpected bytes after the output matrix"));
  }
  return absl::OkStatus();
}

template <typename Visit>
void FastTextVectors::ForEachNgramRow(absl::string_view word,
                                      Visit visit) const {
  if (args_.maxn <= 0 || word == kEos) return;
  // The n-grams are those of "<" + word + ">", built without a copy.
  const size_t len = word.size() + 2;
  auto at = [&](size_t k) -> char {
    return k == 0 ? '<' : (k == len - 1 ? '>' : word[k - 1]);
  };
  auto is_continuation = [](char c) { return (c & 0xC0) == 0x80; };
  auto mix = [](uint32_t h, char c) {
    return (h ^ static_cast<uint32_t>(static_cast<int8_t>(c))) * 16777619u;
  };
  const uint32_t bucket = static_cast<uint32_t>(args_.bucket);
  for (size_t i = 0; i < len; ++i) {
    if (is_continuation(at(i))) continue;
    uint32_t h = 2166136261u;
    size_t j = i;
    for (int32_t n = 1; j < len && n <= args_.maxn; ++n) {
      h = mix(h, at(j++));  // one UTF-8 character: lead byte ...
      while (j < len && is_continuation(at(j))) h = mix(h, at(j++));
      if (n >= args_.minn && !(n == 1 && (i == 0 || j == len))) {
        const int32_t id = static_cast<int32_t>(h % bucket);
        if (!pruned_) {
          visit(static_cast<int64_t>(nwords_) + id);
        } else if (auto it = prune_index_.find(id); it != prune_index_.end()) {
          visit(static_cast<int64_t>(nwords_) + it->second);
        }
      }
    }
  }
}

template <typename Visit>
void FastTextVectors::ForEachRow(absl::string_view word, Visit visit) const {
  if (auto it = ids_.find(word); it != ids_.end()) visit(it->second);
  ForEachNgramRow(word, visit);
}

bool FastTextVectors::Contains(absl::string_view word) const {
  auto it = ids_.find(word);
  return it != ids_.end() && it->second < nwords_;
}

int64_t FastTextVectors::Count(absl::string_view word) const {
  auto it = ids_.find(word);
  return it != ids_.end() && it->second < nwords_ ? counts_[it->second] : 0;
}

void FastTextVectors::Lookup(absl::string_view word, float* out) const {
  const int dim = args_.dim;
  std::fill(out, out + dim, 0.0f);
  int64_t count = 0;
  ForEachRow(word, [&](int64_t row) {
    // A label's id can point past the matrix (fastText would read out of
    // bounds there); it is skipped.
    if (row >= rows_) return;
    const float* r = input_.data() + row * dim;
    for (int j = 0; j < dim; ++j) out[j] += r[j];
    ++count;
  });
  if (count > 0) {
    // fastText multiplies by the float nearest 1/n rather than dividing.
    const float scale = static_cast<float>(1.0 / static_cast<double>(count));
    for (int j = 0; j < dim; ++j) out[j] *= scale;
  }
}

std::vector<int64_t> FastTextVectors::RowsOf(absl::string_view word) const {
  std::vector<int64_t> rows;
  ForEachRow(word, [&](int64_t row) { rows.push_back(row); });
  return rows;
}

}  // namespace ctxembed
