// Reads tensors from a safetensors file: an 8-byte little-endian header
// length, a JSON header, then the raw little-endian tensor bytes.
#ifndef CTXEMBED_MODEL_SAFETENSORS_H_
#define CTXEMBED_MODEL_SAFETENSORS_H_

#include <Eigen/Core>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/mapped_file.h"

namespace ctxembed {

// Row-major float matrices, as PyTorch stores 2-D weights.
using RowMatrixXf =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Immutable after Open; thread-safe. The file stays memory-mapped while the
// object lives; tensors are converted to float32 when read.
class SafeTensors {
 public:
  enum class DType { kF32, kF16, kBF16 };
  struct TensorInfo {
    DType dtype;
    std::vector<int64_t> shape;
    size_t begin = 0;  // byte offsets into the data section
    size_t end = 0;
  };

  // Maps and validates `path`: header length within the file (and at most
  // 100 MB), a JSON object of tensors with dtype F32/F16/BF16, shapes whose
  // byte size equals their data_offsets span, offsets inside the data
  // section, contiguous from 0 to its end without holes or overlaps, and no
  // duplicate names. Errors (DATA_LOSS / INVALID_ARGUMENT / NOT_FOUND) name
  // the file, and the tensor where there is one.
  static absl::StatusOr<std::unique_ptr<SafeTensors>> Open(
      const std::string& path);
  // As Open, over bytes the caller keeps alive; `name` is used in errors.
  static absl::StatusOr<std::unique_ptr<SafeTensors>> Parse(
      absl::string_view data, const std::string& name);

  bool Has(absl::string_view tensor) const { return tensors_.contains(tensor); }
  // Names of all tensors, sorted.
  std::vector<std::string> Names() const;
  // NOT_FOUND naming the tensor if absent.
  absl::StatusOr<const TensorInfo*> Info(absl::string_view tensor) const;

  // The tensor as float32, which must have exactly `shape`; otherwise
  // NOT_FOUND or INVALID_ARGUMENT "tensor rnn.weight_ih_l0: expected shape
  // [1024, 100], got [1024, 300]".
  absl::StatusOr<std::vector<float>> ReadFloats(
      absl::string_view tensor, const std::vector<int64_t>& shape) const;
  absl::StatusOr<RowMatrixXf> ReadMatrix(absl::string_view tensor, int64_t rows,
                                         int64_t cols) const;
  absl::StatusOr<Eigen::VectorXf> ReadVector(absl::string_view tensor,
                                             int64_t size) const;

  const std::string& name() const { return name_; }

 private:
  SafeTensors() = default;

  std::unique_ptr<MappedFile> file_;  // null when parsing caller's bytes
  std::string name_;
  absl::string_view data_;  // the data section
  absl::flat_hash_map<std::string, TensorInfo> tensors_;
};

// "[1024, 100]".
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_SAFETENSORS_H_
