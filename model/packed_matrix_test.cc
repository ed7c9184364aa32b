#include "model/packed_matrix.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include "model/cpu_info.h"

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

TEST(PackedMatrixTest, Bf16RowRangesEqualTheirPartOfTheWholeProduct) {
  // Whole panels of the bf16 layout multiplied alone give exactly the rows
  // the whole product gives (same kernel, same order of sums).
  const Eigen::MatrixXf w = Eigen::MatrixXf::Random(150, 37);
  const Eigen::MatrixXf x = Eigen::MatrixXf::Random(37, 29);
  const PackedMatrix packed(w, DefaultKernels(), Precision::kBf16);
  const int align = packed.row_alignment();
  ASSERT_GT(align, 0);
  Eigen::VectorXf scratch;
  Eigen::MatrixXf whole = Eigen::MatrixXf::Zero(150, 29);
  packed.MultiplyAdd(x, whole, scratch);
  for (int first = 0; first < 150; first += align) {
    const int count = std::min(150 - first, align + 3);
    Eigen::MatrixXf out = Eigen::MatrixXf::Zero(count, 29);
    packed.MultiplyAddRows(first, count, x, out, scratch);
    EXPECT_EQ(out, whole.middleRows(first, count)) << first;
  }
}

// The int8 scheme written out in double: W per row symmetric (127 / max),
// x per column asymmetric uint8 over [min(0, lo), max(0, hi)].
Eigen::MatrixXd Int8Reference(const Eigen::MatrixXf& w,
                              const Eigen::MatrixXf& x) {
  Eigen::MatrixXd wq(w.rows(), w.cols()), xq(x.rows(), x.cols());
  Eigen::VectorXd ws(w.rows()), xs(x.cols()), xz(x.cols());
  for (int r = 0; r < w.rows(); ++r) {
    const float amax = w.row(r).cwiseAbs().maxCoeff();
    ws(r) = amax / 127.0f;
    for (int c = 0; c < w.cols(); ++c) {
      wq(r, c) = amax > 0 ? std::nearbyint(w(r, c) * (127.0f / amax)) : 0;
    }
  }
  for (int j = 0; j < x.cols(); ++j) {
    const float lo = std::min(0.0f, x.col(j).minCoeff());
    const float hi = std::max(0.0f, x.col(j).maxCoeff());
    const float inv = hi > lo ? 255.0f / (hi - lo) : 0.0f;
    xs(j) = hi > lo ? (hi - lo) / 255.0f : 0.0f;
    xz(j) = std::clamp(std::nearbyint(-lo * inv), 0.0f, 255.0f);
    for (int k = 0; k < x.rows(); ++k) {
      xq(k, j) = std::clamp(std::nearbyint(x(k, j) * inv) + xz(j), 0.0, 255.0);
    }
  }
  Eigen::MatrixXd out =
      wq * (xq - Eigen::VectorXd::Ones(x.rows()) * xz.transpose());
  return ws.asDiagonal() * out * xs.asDiagonal();
}

TEST(PackedMatrixTest, Int8FollowsTheDynamicQuantizationScheme) {
  // The int8 kernel (VNNI, with the v4 table where the CPU has it) against
  // the scheme written out; every other table multiplies the int8-rounded
  // weights in fp32. Whole and by row ranges.
  bool kernel_ran = false;
  for (const KernelTable* k : SupportedKernels()) {
    for (const auto& [rows, depth, n] : {std::tuple{1, 1, 1},
                                         {33, 7, 5},
                                         {100, 37, 29},
                                         {64, 300, 13},
                                         {150, 1536, 40}}) {
      const Eigen::MatrixXf w = Eigen::MatrixXf::Random(rows, depth);
      Eigen::MatrixXf x = Eigen::MatrixXf::Random(depth, n);
      x.col(0).setZero();                         // a column of zeros: scale 0
      if (n > 1) x.col(1) = x.col(1).cwiseAbs();  // no negative value
      const PackedMatrix packed(w, *k, Precision::kInt8);
      EXPECT_FALSE(packed.uses_bf16_kernel());
      EXPECT_EQ(packed.uses_int8_kernel(), Int8GemmIfSupported(*k) != nullptr);
      kernel_ran |= packed.uses_int8_kernel();
      const Eigen::MatrixXf bias = Eigen::MatrixXf::Random(rows, n);
      Eigen::MatrixXf out = bias;
      Eigen::VectorXf scratch;
      packed.MultiplyAdd(x, out, scratch);
      const Eigen::MatrixXd want =
          packed.uses_int8_kernel()
              ? Int8Reference(w, x)
              : (RoundToInt8Rows(w).cast<double>() * x.cast<double>()).eval();
      const double err = (out.cast<double>() - bias.cast<double>() - want)
                             .cwiseAbs()
                             .maxCoeff();
      EXPECT_LE(err, 1e-5 * std::max(1.0, want.cwiseAbs().maxCoeff()))
          << k->isa << " " << rows << "x" << depth << " * " << n;
      // And the quantization error itself stays small against fp32.
      const Eigen::MatrixXf exact = w * x;
      EXPECT_LE((out - bias - exact).cwiseAbs().maxCoeff(),
                0.02 * std::sqrt(depth) + 1e-6)
          << k->isa << " " << rows << "x" << depth;
      const int align = packed.row_alignment();
      ASSERT_GT(align, 0);
      for (int first = 0; first < rows; first += align) {
        const int count = std::min(rows - first, align + 3);
        Eigen::MatrixXf part = Eigen::MatrixXf::Zero(count, n);
        packed.MultiplyAddRows(first, count, x, part, scratch);
        EXPECT_LE((part - (out - bias).middleRows(first, count))
                      .cwiseAbs()
                      .maxCoeff(),
                  1e-5f)
            << k->isa << " rows from " << first;
      }
    }
  }
  // On a CPU with AVX512_VNNI the kernel itself was checked.
  EXPECT_EQ(kernel_ran, CpuHasVnni());
}

// Affine (bias in the kernel's store) equals the bias copied into out and
// MultiplyAdd, bit for bit (the same sum in the same order), on every
// kernel level and precision, whole and by row ranges; out's old values,
// NaN here, are never read.
TEST(PackedMatrixTest, AffineEqualsBiasPlusMultiplyAddExactly) {
  std::vector<std::pair<const KernelTable*, Precision>> cases;
  for (const KernelTable* k : SupportedKernels()) {
    for (Precision p : {Precision::kFp32, Precision::kBf16, Precision::kInt8}) {
      cases.emplace_back(k, p);
    }
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const auto& [k, precision] : cases) {
    for (const auto& [rows, depth, n] : {std::tuple{1, 1, 1},
                                         {33, 7, 5},
                                         {100, 37, 29},
                                         {1024, 100, 130},
                                         {0, 5, 3},
                                         {7, 0, 2}}) {
      const Eigen::MatrixXf w = Eigen::MatrixXf::Random(rows, depth);
      const Eigen::MatrixXf x = Eigen::MatrixXf::Random(depth, n);
      const Eigen::VectorXf bias = Eigen::VectorXf::Random(rows);
      const PackedMatrix packed(w, *k, precision);
      Eigen::VectorXf scratch;
      Eigen::MatrixXf want(rows, n);
      want.colwise() = bias;
      packed.MultiplyAdd(x, want, scratch);
      Eigen::MatrixXf got = Eigen::MatrixXf::Constant(rows, n, nan);
      packed.Affine(x, bias.data(), got, scratch);
      EXPECT_EQ(got, want) << k->isa << " precision "
                           << static_cast<int>(precision) << " " << rows << "x"
                           << depth << " * " << n;
      const int align = packed.row_alignment();
      if (align == 0) continue;
      for (int first = 0; first < rows; first += align) {
        const int count = std::min(rows - first, align + 3);
        Eigen::MatrixXf part = Eigen::MatrixXf::Constant(count, n, nan);
        packed.AffineRows(first, count, x, bias.data() + first, part, scratch);
        EXPECT_EQ(part, want.middleRows(first, count))
            << k->isa << " rows from " << first;
      }
    }
  }
}

TEST(PackedMatrixTest, RoundToInt8RowsUsesOneStepPerRow) {
  Eigen::MatrixXf w(2, 4);
  w << 1.27f, -0.5f, 0.004f, 0.0f,  //
      0.0f, 0.0f, 0.0f, 0.0f;
  const Eigen::MatrixXf r = RoundToInt8Rows(w);
  EXPECT_FLOAT_EQ(r(0, 0), 1.27f);        // 127 steps of 0.01
  EXPECT_FLOAT_EQ(r(0, 1), -50 * 0.01f);  // exactly -50 steps
  EXPECT_FLOAT_EQ(r(0, 2), 0.0f);         // under half a step
  EXPECT_EQ(r.row(1), w.row(1));          // a row of zeros stays zero
}

TEST(PackedMatrixTest, RoundToBf16RoundsToNearestEven) {
  EXPECT_EQ(RoundToBf16(1.0f), 1.0f);
  EXPECT_EQ(RoundToBf16(-2.5f), -2.5f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to even (1).
  EXPECT_EQ(RoundToBf16(1.0f + 1.0f / 256), 1.0f);
  EXPECT_EQ(RoundToBf16(1.0f + 3.0f / 256), 1.0f + 1.0f / 64);
  EXPECT_EQ(RoundToBf16(1.0f + 1.0f / 128 + 1e-6f), 1.0f + 1.0f / 128);
}

// The packed weights' storage starts on a cache line whatever malloc would
// have returned: small and large (mmap-sized) sizes, after allocations of
// odd sizes, grown, and copied.
TEST(PackedMatrixTest, AlignedVectorStartsOnACacheLine) {
  auto aligned = [](const void* p) {
    return reinterpret_cast<uintptr_t>(p) % kCacheLineBytes == 0;
  };
  std::vector<std::vector<char>> odd;
  for (size_t n : {1, 3, 1000, 300000}) {
    odd.emplace_back(n * 7 + 5);
    AlignedVector<float> v(n, 1.0f);
    EXPECT_TRUE(aligned(v.data())) << n;
    v.resize(3 * n + 1, 2.0f);
    EXPECT_TRUE(aligned(v.data())) << n;
    EXPECT_EQ(v[0], 1.0f);
    EXPECT_EQ(v.back(), 2.0f);
    const AlignedVector<float> copy = v;
    EXPECT_TRUE(aligned(copy.data())) << n;
    EXPECT_EQ(copy, v);
  }
}

}  // namespace
}  // namespace ctxembed
