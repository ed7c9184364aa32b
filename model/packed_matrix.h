// A weight matrix packed once for the GEMM kernel of model/kernel_table.h,
// so the recurrent step W_hh * h does not repack W_hh at every time step.
#ifndef CTXEMBED_MODEL_PACKED_MATRIX_H_
#define CTXEMBED_MODEL_PACKED_MATRIX_H_

#include <Eigen/Core>
#include <vector>

#include "model/kernel_table.h"
#include "model/kernels.h"

namespace ctxembed {

// Immutable after construction; thread-safe (MultiplyAdd's scratch is the
// caller's). Keeps the kernel table it was packed for: the packed layout
// is that table's.
class PackedMatrix {
 public:
  PackedMatrix() = default;
  explicit PackedMatrix(const Eigen::MatrixXf& w,
                        const KernelTable& kernels = DefaultKernels());

  Eigen::Index rows() const { return rows_; }
  Eigen::Index cols() const { return cols_; }
  const KernelTable& kernels() const { return *kernels_; }

  // out += W * x, where x is [cols x n] and out is [rows x n], both
  // column-major with contiguous columns. `rhs_scratch` holds the packed x;
  // it grows as needed and is reused.
  void MultiplyAdd(const Eigen::Ref<const Eigen::MatrixXf>& x,
                   Eigen::Ref<Eigen::MatrixXf> out,
                   Eigen::VectorXf& rhs_scratch) const;

 private:
  Eigen::Index rows_ = 0, cols_ = 0;
  const KernelTable* kernels_ = nullptr;
  std::vector<float> packed_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_PACKED_MATRIX_H_
