#include "model/packed_matrix.h"

#include <Eigen/Core>
#include <algorithm>

namespace ctxembed {
namespace {

using Eigen::Index;
using Eigen::internal::blas_data_mapper;
using Eigen::internal::const_blas_data_mapper;
using Eigen::internal::gebp_kernel;
using Eigen::internal::gebp_traits;
using Eigen::internal::gemm_pack_lhs;
using Eigen::internal::gemm_pack_rhs;

using Traits = gebp_traits<float, float>;

// Packed right-hand side per GEBP call: small enough to stay in L2.
constexpr Index kRhsChunkBytes = 256 << 10;
using LhsMapper = const_blas_data_mapper<float, Index, Eigen::ColMajor>;
using RhsMapper = const_blas_data_mapper<float, Index, Eigen::ColMajor>;
using ResMapper =
    blas_data_mapper<float, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;
using PackLhs =
    gemm_pack_lhs<float, Index, LhsMapper, Traits::mr, Traits::LhsProgress,
                  Traits::LhsPacket4Packing, Eigen::ColMajor>;
using PackRhs =
    gemm_pack_rhs<float, Index, RhsMapper, Traits::nr, Eigen::ColMajor>;
using Gebp = gebp_kernel<float, float, Index, ResMapper, Traits::mr, Traits::nr,
                         false, false>;

}  // namespace

PackedMatrix::PackedMatrix(const Eigen::MatrixXf& w)
    : rows_(w.rows()), cols_(w.cols()) {
  // One block: kc = all columns (the depth), mc = all rows.
  packed_.resize(rows_ * cols_);
  PackLhs()(packed_.data(), LhsMapper(w.data(), w.outerStride()), cols_, rows_);
}

void PackedMatrix::MultiplyAdd(const Eigen::Ref<const Eigen::MatrixXf>& x,
                               Eigen::Ref<Eigen::MatrixXf> out,
                               Eigen::VectorXf& rhs_scratch) const {
  const Index n = x.cols();
  if (n == 0 || rows_ == 0) return;
  // Columns go through in chunks whose packed form stays in L2 while all of
  // W streams past it, as Eigen's own blocking would arrange.
  const Index chunk = std::max<Index>(
      Traits::nr,
      std::min<Index>(n, (kRhsChunkBytes / 4 / std::max<Index>(cols_, 1)) /
                             Traits::nr * Traits::nr));
  if (rhs_scratch.size() < cols_ * chunk) rhs_scratch.resize(cols_ * chunk);
  for (Index j = 0; j < n; j += chunk) {
    const Index width = std::min(chunk, n - j);
    PackRhs()(rhs_scratch.data(),
              RhsMapper(x.data() + j * x.outerStride(), x.outerStride()), cols_,
              width);
    Gebp()(ResMapper(out.data() + j * out.outerStride(), out.outerStride()),
           packed_.data(), rhs_scratch.data(), rows_, cols_, width, 1.0f);
  }
}

}  // namespace ctxembed
