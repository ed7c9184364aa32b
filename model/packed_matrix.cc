#include "model/packed_matrix.h"

namespace ctxembed {

PackedMatrix::PackedMatrix(const Eigen::MatrixXf& w, const KernelTable& kernels)
    : rows_(w.rows()), cols_(w.cols()), kernels_(&kernels) {
  packed_.resize(kernels.packed_floats(rows_, cols_));
  // Column-major: element (r, c) at r + c * outerStride.
  kernels.pack(w.data(), 1, w.outerStride(), rows_, cols_, packed_.data());
}

void PackedMatrix::MultiplyAdd(const Eigen::Ref<const Eigen::MatrixXf>& x,
                               Eigen::Ref<Eigen::MatrixXf> out,
                               Eigen::VectorXf& rhs_scratch) const {
  const Eigen::Index n = x.cols();
  if (n == 0 || rows_ == 0 || cols_ == 0) return;
  const size_t need = kernels_->gemm_scratch_floats(cols_, n);
  if (static_cast<size_t>(rhs_scratch.size()) < need) rhs_scratch.resize(need);
  kernels_->gemm(packed_.data(), rows_, cols_, x.data(), x.outerStride(), n,
                 out.data(), out.outerStride(), rhs_scratch.data());
}

}  // namespace ctxembed
