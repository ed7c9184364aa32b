#include "model/packed_matrix.h"

#include <gtest/gtest.h>

namespace ctxembed {
namespace {

// Every kernel level this CPU runs, against Eigen's product.
TEST(PackedMatrixTest, EqualsEigensProductForManyShapesOnEveryLevel) {
  for (const KernelTable* k : SupportedKernels()) {
    Eigen::VectorXf scratch;
    for (int rows : {1, 3, 8, 23, 24, 37, 148, 1024}) {
      for (int depth : {1, 5, 37, 256}) {
        for (int n : {1, 2, 3, 4, 5, 7, 13, 31, 32, 33, 700}) {
          const Eigen::MatrixXf w = Eigen::MatrixXf::Random(rows, depth);
          const PackedMatrix packed(w, *k);
          // x and out as blocks of taller and wider matrices, as the encoder
          // uses them: columns contiguous, strides larger than their height.
          Eigen::MatrixXf x_store = Eigen::MatrixXf::Random(depth + 2, n + 3);
          Eigen::MatrixXf out = Eigen::MatrixXf::Random(rows + 1, n + 2);
          Eigen::MatrixXf want = out;
          want.topLeftCorner(rows, n) += w * x_store.topLeftCorner(depth, n);
          packed.MultiplyAdd(x_store.topLeftCorner(depth, n),
                             out.topLeftCorner(rows, n), scratch);
          const float err = (out - want).cwiseAbs().maxCoeff();
          EXPECT_LE(err, 1e-5f * depth)
              << k->isa << ": " << rows << "x" << depth << " * " << n;
          // Untouched outside the product.
          EXPECT_EQ(out.rightCols(2), want.rightCols(2)) << k->isa;
          EXPECT_EQ(out.bottomRows(1), want.bottomRows(1)) << k->isa;
        }
      }
    }
  }
}

}  // namespace
}  // namespace ctxembed
