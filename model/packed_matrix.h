// A weight matrix packed once for Eigen's GEMM kernel, so the recurrent step
// W_hh * h does not repack all of W_hh at every time step (Eigen's product
// does; for H = 256 that repacking took 15% of an encoder's time).
#ifndef CTXEMBED_MODEL_PACKED_MATRIX_H_
#define CTXEMBED_MODEL_PACKED_MATRIX_H_

#include <Eigen/Core>

namespace ctxembed {

// Immutable after construction; thread-safe (MultiplyAdd's scratch is the
// caller's). Uses Eigen 3.4's internal GEBP kernel and packing routines
// directly, the ones Eigen's own matrix product runs; packed_matrix_test.cc
// checks it against Eigen's product so an Eigen upgrade cannot break it
// silently.
class PackedMatrix {
 public:
  PackedMatrix() = default;
  explicit PackedMatrix(const Eigen::MatrixXf& w);

  Eigen::Index rows() const { return rows_; }
  Eigen::Index cols() const { return cols_; }

  // out += W * x, where x is [cols x n] and out is [rows x n], both
  // column-major with contiguous columns. `rhs_scratch` holds the packed x;
  // it grows as needed and is reused.
  void MultiplyAdd(const Eigen::Ref<const Eigen::MatrixXf>& x,
                   Eigen::Ref<Eigen::MatrixXf> out,
                   Eigen::VectorXf& rhs_scratch) const;

 private:
  Eigen::Index rows_ = 0, cols_ = 0;
  Eigen::VectorXf packed_;  // Eigen-aligned, rows x cols floats
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_PACKED_MATRIX_H_
