#include "model/packed_matrix.h"

#include <gtest/gtest.h>

namespace ctxembed {
namespace {

TEST(PackedMatrixTest, EqualsEigensProductForManyShapes) {
  Eigen::VectorXf scratch;
  for (int rows : {1, 3, 8, 23, 24, 37, 148, 1024}) {
    for (int depth : {1, 5, 37, 256}) {
      for (int n : {1, 2, 4, 5, 31, 32, 33, 700}) {
        const Eigen::MatrixXf w = Eigen::MatrixXf::Random(rows, depth);
        const PackedMatrix packed(w);
        // x and out as blocks of wider matrices, as the encoder uses them.
        Eigen::MatrixXf x_store = Eigen::MatrixXf::Random(depth, n + 3);
        Eigen::MatrixXf out = Eigen::MatrixXf::Random(rows, n + 2);
        Eigen::MatrixXf want = out;
        want.leftCols(n) += w * x_store.leftCols(n);
        packed.MultiplyAdd(x_store.leftCols(n), out.leftCols(n), scratch);
        const float err = (out - want).cwiseAbs().maxCoeff();
        EXPECT_LE(err, 1e-4f * depth) << rows << "x" << depth << " * " << n;
        EXPECT_EQ(out.rightCols(2), want.rightCols(2));  // untouched
      }
    }
  }
}

}  // namespace
}  // namespace ctxembed
