#include "model/packed_matrix.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace ctxembed {

float RoundToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000u;
  std::memcpy(&x, &bits, 4);
  return x;
}

Eigen::MatrixXf RoundToInt8Rows(const Eigen::MatrixXf& w) {
  Eigen::MatrixXf out(w.rows(), w.cols());
  for (Eigen::Index r = 0; r < w.rows(); ++r) {
    const float amax = w.cols() > 0 ? w.row(r).cwiseAbs().maxCoeff() : 0.0f;
    const float scale = amax / 127.0f;
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    for (Eigen::Index c = 0; c < w.cols(); ++c) {
      out(r, c) =
          std::clamp(std::nearbyint(w(r, c) * inv), -127.0f, 127.0f) * scale;
    }
  }
  return out;
}

PackedMatrix::PackedMatrix(const Eigen::MatrixXf& w, const KernelTable& kernels,
                           Precision precision)
    : rows_(w.rows()),
      cols_(w.cols()),
      kernels_(&kernels),
      precision_(precision) {
  if (precision == Precision::kBf16) reduced_ = Bf16GemmIfSupported();
  // The int8 kernel's sums stay exact in int32 up to this depth (255 * 127
  // * depth < 2^31); deeper matrices (none in practice) take the fallback.
  constexpr Eigen::Index kInt8MaxDepth = 65536;
  if (precision == Precision::kInt8 && cols_ <= kInt8MaxDepth) {
    reduced_ = Int8GemmIfSupported(kernels);
  }
  if (reduced_ != nullptr) {
    const size_t bytes = reduced_->packed_bytes(rows_, cols_);
    packed_.resize((bytes + 3) / 4);
    reduced_->pack(w.data(), 1, w.outerStride(), rows_, cols_, packed_.data());
    return;
  }
  packed_.resize(kernels.packed_floats(rows_, cols_));
  if (precision != Precision::kFp32) {
    // No bf16 or int8 kernel here: the same rounded weights through the
    // fp32 kernel.
    const Eigen::MatrixXf rounded = precision == Precision::kBf16
                                        ? w.unaryExpr(&RoundToBf16).eval()
                                        : RoundToInt8Rows(w);
    kernels.pack(rounded.data(), 1, rounded.outerStride(), rows_, cols_,
                 packed_.data());
    return;
  }
  // Column-major: element (r, c) at r + c * outerStride.
  kernels.pack(w.data(), 1, w.outerStride(), rows_, cols_, packed_.data());
}

void PackedMatrix::MultiplyAdd(const Eigen::Ref<const Eigen::MatrixXf>& x,
                               Eigen::Ref<Eigen::MatrixXf> out,
                               Eigen::VectorXf& rhs_scratch,
                               RowOrder order) const {
  Run(0, static_cast<int>(rows_), x, nullptr, out, rhs_scratch, order);
}

int PackedMatrix::row_alignment() const {
  if (cols_ == 0) return 0;
  if (reduced_ != nullptr) return reduced_->panel_rows;
  return static_cast<int>(kernels_->packed_floats(1, static_cast<int>(cols_)) /
                          cols_);
}

void PackedMatrix::MultiplyAddRows(int first, int count,
                                   const Eigen::Ref<const Eigen::MatrixXf>& x,
                                   Eigen::Ref<Eigen::MatrixXf> out,
                                   Eigen::VectorXf& rhs_scratch) const {
  Run(first, count, x, nullptr, out, rhs_scratch, RowOrder::kForward);
}

void PackedMatrix::Affine(const Eigen::Ref<const Eigen::MatrixXf>& x,
                          const float* bias, Eigen::Ref<Eigen::MatrixXf> out,
                          Eigen::VectorXf& rhs_scratch, RowOrder order) const {
  Run(0, static_cast<int>(rows_), x, bias, out, rhs_scratch, order);
}

void PackedMatrix::AffineRows(int first, int count,
                              const Eigen::Ref<const Eigen::MatrixXf>& x,
                              const float* bias,
                              Eigen::Ref<Eigen::MatrixXf> out,
                              Eigen::VectorXf& rhs_scratch) const {
  Run(first, count, x, bias, out, rhs_scratch, RowOrder::kForward);
}

void PackedMatrix::Run(int first, int count,
                       const Eigen::Ref<const Eigen::MatrixXf>& x,
                       const float* bias, Eigen::Ref<Eigen::MatrixXf> out,
                       Eigen::VectorXf& rhs_scratch, RowOrder order) const {
  const Eigen::Index n = x.cols();
  if (n == 0 || count == 0) return;
  if (cols_ == 0) {
    // An empty product: out is the bias (or unchanged).
    if (bias != nullptr) {
      out.colwise() = Eigen::Map<const Eigen::VectorXf>(bias, count);
    }
    return;
  }
  const int cols = static_cast<int>(cols_);
  if (reduced_ != nullptr) {
    const size_t need = (reduced_->scratch_bytes(cols, n) + 3) / 4;
    if (static_cast<size_t>(rhs_scratch.size()) < need)
      rhs_scratch.resize(need);
    // Panel p starts at byte p * packed_bytes(1, cols).
    const size_t offset = static_cast<size_t>(first / reduced_->panel_rows) *
                          reduced_->packed_bytes(1, cols);
    reduced_->gemm(reinterpret_cast<const char*>(packed_.data()) + offset,
                   count, cols, x.data(), x.outerStride(), n, out.data(),
                   out.outerStride(), bias, rhs_scratch.data());
    return;
  }
  const size_t need = kernels_->gemm_scratch_floats(cols, n);
  if (static_cast<size_t>(rhs_scratch.size()) < need) rhs_scratch.resize(need);
  // Panel p starts at p * panel * cols: rows [first, ...) start at
  // first * cols.
  kernels_->gemm(packed_.data() + static_cast<size_t>(first) * cols_, count,
                 cols, x.data(), x.outerStride(), n, out.data(),
                 out.outerStride(), bias, rhs_scratch.data(),
                 order == RowOrder::kBackward);
}

}  // namespace ctxembed
