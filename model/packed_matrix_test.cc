#include "model/packed_matrix.h"

#include <gtest/gtest.h>

#include <algorithm>

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

// bf16: the weights (and, on the AVX512_BF16 kernel, x) rounded to
// bfloat16, the products summed in fp32: equal to Eigen's product of the
// rounded matrices up to summation order.
TEST(PackedMatrixTest, Bf16EqualsTheProductOfRoundedMatrices) {
  const bool kernel = Bf16GemmIfSupported() != nullptr;
  Eigen::VectorXf scratch;
  for (int rows : {1, 31, 32, 33, 148, 1024}) {
    for (int depth : {1, 2, 5, 37, 256}) {
      for (int n : {1, 3, 12, 13, 32, 700}) {
        const Eigen::MatrixXf w = Eigen::MatrixXf::Random(rows, depth);
        const PackedMatrix packed(w, DefaultKernels(), Precision::kBf16);
        EXPECT_EQ(packed.uses_bf16_kernel(), kernel);
        Eigen::MatrixXf x_store = Eigen::MatrixXf::Random(depth + 1, n + 1);
        Eigen::MatrixXf out = Eigen::MatrixXf::Random(rows + 1, n + 1);
        Eigen::MatrixXf want = out;
        const Eigen::MatrixXf w16 = w.unaryExpr(&RoundToBf16);
        Eigen::MatrixXf x = x_store.topLeftCorner(depth, n);
        if (kernel) x = x.unaryExpr(&RoundToBf16).eval();
        want.topLeftCorner(rows, n) += w16 * x;
        packed.MultiplyAdd(x_store.topLeftCorner(depth, n),
                           out.topLeftCorner(rows, n), scratch);
        EXPECT_LE((out - want).cwiseAbs().maxCoeff(), 1e-5f * depth)
            << rows << "x" << depth << " * " << n;
        EXPECT_EQ(out.rightCols(1), want.rightCols(1));
        EXPECT_EQ(out.bottomRows(1), want.bottomRows(1));
      }
    }
  }
}

TEST(PackedMatrixTest, RowRangesEqualTheirPartOfTheProduct) {
  for (const KernelTable* k : SupportedKernels()) {
    const Eigen::MatrixXf w = Eigen::MatrixXf::Random(100, 37);
    const Eigen::MatrixXf x = Eigen::MatrixXf::Random(37, 29);
    const PackedMatrix packed(w, *k);
    const int align = packed.row_alignment();
    ASSERT_GT(align, 0) << k->isa;
    Eigen::VectorXf scratch;
    for (int first = 0; first < 100; first += align) {
      const int count = std::min(100 - first, align + 3);
      Eigen::MatrixXf out = Eigen::MatrixXf::Zero(count, 29);
      packed.MultiplyAddRows(first, count, x, out, scratch);
      const Eigen::MatrixXf want = w.middleRows(first, count) * x;
      EXPECT_LE((out - want).cwiseAbs().maxCoeff(), 1e-4f) << k->isa;
    }
  }
}

TEST(PackedMatrixTest, RoundToBf16RoundsToNearestEven) {
  EXPECT_EQ(RoundToBf16(1.0f), 1.0f);
  EXPECT_EQ(RoundToBf16(-2.5f), -2.5f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to even (1).
  EXPECT_EQ(RoundToBf16(1.0f + 1.0f / 256), 1.0f);
  EXPECT_EQ(RoundToBf16(1.0f + 3.0f / 256), 1.0f + 1.0f / 64);
  EXPECT_EQ(RoundToBf16(1.0f + 1.0f / 128 + 1e-6f), 1.0f + 1.0f / 128);
}

}  // namespace
}  // namespace ctxembed
