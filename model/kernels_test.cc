#include "model/kernels.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "model/cpu_info.h"

namespace ctxembed {
namespace {

using ::testing::HasSubstr;

double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

std::vector<float> Inputs() {
  std::vector<float> xs = {0.0f,   -0.0f, 1e-30f, -1e-30f, 1e-8f,  -1e-8f,
                           1e-4f,  0.5f,  -0.5f,  1.0f,    -3.0f,  8.9f,
                           9.1f,   20.0f, -20.0f, 87.0f,   -87.0f, 88.5f,
                           -88.5f, 100.f, -100.f, 1e30f,   -1e30f};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-12.0f, 12.0f);
  for (int i = 0; i < 1001; ++i) xs.push_back(u(rng));  // not a lane multiple
  return xs;
}

TEST(KernelsTest, ActivationsMatchDoublePrecisionOnEveryLevel) {
  const std::vector<float> xs = Inputs();
  for (const KernelTable* k : SupportedKernels()) {
    std::vector<float> s = xs, t = xs;
    k->logistic(s.data(), static_cast<ptrdiff_t>(s.size()));
    k->tanh(t.data(), static_cast<ptrdiff_t>(t.size()));
    for (size_t i = 0; i < xs.size(); ++i) {
      EXPECT_NEAR(s[i], Sigmoid(xs[i]), 2e-7) << k->isa << " x=" << xs[i];
      EXPECT_NEAR(t[i], std::tanh(static_cast<double>(xs[i])), 2e-7)
          << k->isa << " x=" << xs[i];
      EXPECT_EQ(std::signbit(t[i]), std::signbit(xs[i])) << xs[i];
    }
  }
}

// State sizes that are and are not multiples of every vector width; column
// strides wider than the state, as the encoder's scratch has them.
TEST(KernelsTest, CellsFollowPyTorchEquationsOnEveryLevel) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  for (const KernelTable* k : SupportedKernels()) {
    for (int hidden : {1, 5, 16, 37, 130}) {
      const int b = 3, ldh = hidden + 2;
      // LSTM.
      const int ldg = 4 * hidden + 1;
      std::vector<float> gates(ldg * b), c(ldh * b), h(ldh * b);
      for (float& x : gates) x = u(rng);
      for (float& x : c) x = u(rng);
      for (float& x : h) x = u(rng);
      std::vector<float> c0 = c, h0 = h;
      k->lstm_cell(gates.data(), ldg, c.data(), h.data(), ldh, hidden, b);
      for (int col = 0; col < b; ++col) {
        for (int r = 0; r < ldh; ++r) {
          const float* g = &gates[col * ldg];
          const int at = col * ldh + r;
          if (r >= hidden) {  // padding rows untouched
            EXPECT_EQ(c[at], c0[at]);
            EXPECT_EQ(h[at], h0[at]);
            continue;
          }
          const double cn = Sigmoid(g[hidden + r]) * c0[at] +
                            Sigmoid(g[r]) * std::tanh(g[2 * hidden + r]);
          EXPECT_NEAR(c[at], cn, 1e-6) << k->isa << " H=" << hidden;
          EXPECT_NEAR(h[at], Sigmoid(g[3 * hidden + r]) * std::tanh(cn), 1e-6)
              << k->isa << " H=" << hidden;
        }
      }
      // GRU, after the first step and at it.
      for (bool first : {false, true}) {
        const int ldq = 3 * hidden + 1;
        std::vector<float> gi(ldq * b), gh(ldq * b), hg(ldh * b);
        for (float& x : gi) x = u(rng);
        for (float& x : gh) x = u(rng);
        for (float& x : hg) x = u(rng);
        std::vector<float> hg0 = hg;
        k->gru_cell(gi.data(), gh.data(), ldq, hg.data(), ldh, hidden, b,
                    first);
        for (int col = 0; col < b; ++col) {
          for (int r = 0; r < hidden; ++r) {
            const float* a = &gi[col * ldq];
            const float* q = &gh[col * ldq];
            const double rr = Sigmoid(a[r] + q[r]);
            const double z = Sigmoid(a[hidden + r] + q[hidden + r]);
            const double n =
                std::tanh(a[2 * hidden + r] + rr * q[2 * hidden + r]);
            const double want =
                (1 - z) * n + (first ? 0.0 : z * hg0[col * ldh + r]);
            EXPECT_NEAR(hg[col * ldh + r], want, 1e-6)
                << k->isa << " H=" << hidden << " first=" << first;
          }
          EXPECT_EQ(hg[col * ldh + hidden], hg0[col * ldh + hidden]);
        }
      }
    }
  }
}

// pack + gemm (and gemm_rows, x read in place k-major) on every level
// against double-precision sums, for both layouts pack() reads whole
// vectors of (columns of contiguous rows, as PackedMatrix packs an Eigen
// matrix and attention packs V; rows of contiguous columns, as attention
// packs Q) and a strided one; shapes with partial panels, depths and widths
// that are and are not multiples of every vector width, and right-hand
// sides wider than one group.
TEST(KernelsTest, PackAndGemmMatchDoubleSumsOnEveryLayoutAndLevel) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const KernelTable* k : SupportedKernels()) {
    for (int rows : {1, 7, 32, 45, 70}) {
      for (int cols : {1, 9, 16, 33, 64}) {
        // W's storage: element (r, c) at r * rs + c * cs.
        struct Layout {
          ptrdiff_t rs, cs;
        };
        for (const Layout l : {Layout{1, rows + 3}, Layout{cols + 5, 1},
                               Layout{2, 2 * rows + 1}}) {
          std::vector<float> w((rows + 3) * l.rs + (cols + 5) * l.cs);
          for (float& v : w) v = u(rng);
          std::vector<float> packed(k->packed_floats(rows, cols));
          k->pack(w.data(), l.rs, l.cs, rows, cols, packed.data());
          for (int n : {1, 5, 13, 40}) {
            const ptrdiff_t ldx = cols + 2, ldo = rows + 1;
            std::vector<float> x(ldx * n), bias(rows);
            for (float& v : x) v = u(rng);
            for (float& v : bias) v = u(rng);
            std::vector<float> scratch(k->gemm_scratch_floats(cols, n));
            std::vector<float> out(ldo * n, 0.5f), biased(ldo * n, NAN);
            k->gemm(packed.data(), rows, cols, x.data(), ldx, n, out.data(),
                    ldo, nullptr, scratch.data(), false);
            k->gemm(packed.data(), rows, cols, x.data(), ldx, n, biased.data(),
                    ldo, bias.data(), scratch.data(), false);
            // The same x k-major: column j at depth c is xt[c * ldxt + j].
            const ptrdiff_t ldxt = n + 3;
            std::vector<float> xt(ldxt * cols);
            for (int j = 0; j < n; ++j)
              for (int c = 0; c < cols; ++c) xt[c * ldxt + j] = x[j * ldx + c];
            std::vector<float> rows_out(ldo * n, 0.5f), rows_biased(ldo * n);
            k->gemm_rows(packed.data(), rows, cols, xt.data(), ldxt, n,
                         rows_out.data(), ldo, nullptr);
            k->gemm_rows(packed.data(), rows, cols, xt.data(), ldxt, n,
                         rows_biased.data(), ldo, bias.data());
            for (int j = 0; j < n; ++j) {
              for (int r = 0; r < rows; ++r) {
                double sum = 0;
                for (int c = 0; c < cols; ++c)
                  sum += double{w[r * l.rs + c * l.cs]} * x[j * ldx + c];
                EXPECT_NEAR(out[j * ldo + r], 0.5 + sum, 1e-5)
                    << k->isa << " " << rows << "x" << cols << " n=" << n
                    << " strides " << l.rs << "," << l.cs;
                EXPECT_NEAR(biased[j * ldo + r], bias[r] + sum, 1e-5)
                    << k->isa << " " << rows << "x" << cols << " n=" << n;
                EXPECT_NEAR(rows_out[j * ldo + r], 0.5 + sum, 1e-5)
                    << k->isa << " gemm_rows " << rows << "x" << cols
                    << " n=" << n;
                EXPECT_NEAR(rows_biased[j * ldo + r], bias[r] + sum, 1e-5)
                    << k->isa << " gemm_rows " << rows << "x" << cols
                    << " n=" << n;
              }
              EXPECT_EQ(out[j * ldo + rows], 0.5f);  // padding row untouched
              EXPECT_EQ(rows_out[j * ldo + rows], 0.5f);
            }
          }
        }
      }
    }
  }
}

// gemm reading W's blocks of rows last to first gives the first-to-last
// result bit for bit, on every level: W of several blocks (the last one and
// the last panel partial), right-hand sides of one group and of several,
// with and without bias.
TEST(KernelsTest, GemmBackwardEqualsForwardBitForBit) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int rows = 1001, cols = 256;
  const ptrdiff_t ldo = rows + 1;
  std::vector<float> w(static_cast<size_t>(rows) * cols), bias(rows);
  for (float& v : w) v = u(rng);
  for (float& v : bias) v = u(rng);
  for (const KernelTable* k : SupportedKernels()) {
    std::vector<float> packed(k->packed_floats(rows, cols));
    k->pack(w.data(), cols, 1, rows, cols, packed.data());
    for (int n : {1, 5, 40}) {
      std::vector<float> x(static_cast<size_t>(cols) * n);
      for (float& v : x) v = u(rng);
      std::vector<float> scratch(k->gemm_scratch_floats(cols, n));
      for (const float* b : {static_cast<const float*>(nullptr),
                             static_cast<const float*>(bias.data())}) {
        std::vector<float> forward(ldo * n, 0.5f), backward(ldo * n, 0.5f);
        k->gemm(packed.data(), rows, cols, x.data(), cols, n, forward.data(),
                ldo, b, scratch.data(), false);
        k->gemm(packed.data(), rows, cols, x.data(), cols, n, backward.data(),
                ldo, b, scratch.data(), true);
        EXPECT_EQ(forward, backward)
            << k->isa << " n=" << n << (b != nullptr ? " with bias" : "");
        for (int j = 0; j < n; ++j) EXPECT_EQ(backward[j * ldo + rows], 0.5f);
      }
    }
  }
}

// The transformer's element-wise kernels on every level, against plain
// double-precision arithmetic.
TEST(KernelsTest, GeluSoftmaxAndLayerNormOnEveryLevel) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  for (const KernelTable* k : SupportedKernels()) {
    std::vector<float> x(1000);
    for (float& v : x) v = dist(rng);
    x[0] = 0.0f;
    x[1] = -12.0f;
    x[2] = 12.0f;
    std::vector<float> y = x;
    k->gelu(y.data(), static_cast<ptrdiff_t>(y.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      const double want = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
      EXPECT_NEAR(y[i], want, 3e-7 * std::max(1.0, std::fabs(want)))
          << k->isa << " x=" << x[i];
    }
    // Softmax of scale * row: 5, 16 and 37 rows (partial and whole vectors
    // of rows) of 1, 5 and 37 columns, 40 floats apart; the numerators, and
    // 1 / their sum per row.
    for (const int sm_rows : {5, 16, 37}) {
      for (const int cols : {1, 5, 37}) {
        const int rows = sm_rows, ld = 40;
        std::vector<float> s(ld * cols);
        for (float& v : s) v = dist(rng);
        std::vector<float> got = s, inv(rows + 1, -1.0f);
        k->softmax_rows(got.data(), ld, rows, cols, 0.125f, inv.data());
        for (int r = 0; r < rows; ++r) {
          double max = -1e30, sum = 0;
          for (int c = 0; c < cols; ++c)
            max = std::max<double>(max, s[c * ld + r]);
          for (int c = 0; c < cols; ++c)
            sum += std::exp(0.125 * (s[c * ld + r] - max));
          for (int c = 0; c < cols; ++c) {
            const double e = std::exp(0.125 * (s[c * ld + r] - max));
            EXPECT_NEAR(got[c * ld + r], e, 2e-7 * e) << k->isa;
            EXPECT_NEAR(got[c * ld + r] * inv[r], e / sum, 1e-7) << k->isa;
          }
          // float sums of up to 37 terms
          EXPECT_NEAR(inv[r], 1 / sum, 1e-6 / sum) << k->isa;
        }
        EXPECT_EQ(inv[rows], -1.0f);  // past the rows
        for (int c = 0; c < cols; ++c)
          EXPECT_EQ(got[c * ld + rows], s[c * ld + rows]);
      }
    }
    const int rows = 37, ld = 40, cols = 3;
    std::vector<float> s(ld * cols);
    for (float& v : s) v = dist(rng);
    std::vector<float> got;
    // LayerNorm(x + r) * gamma + beta.
    std::vector<float> res(ld * cols), gamma(rows), beta(rows);
    for (float& v : res) v = dist(rng);
    for (float& v : gamma) v = 1.0f + 0.1f * dist(rng);
    for (float& v : beta) v = 0.1f * dist(rng);
    got = s;
    k->layer_norm_columns(got.data(), ld, res.data(), ld, rows, cols,
                          gamma.data(), beta.data(), 1e-12f);
    for (int c = 0; c < cols; ++c) {
      double mean = 0, var = 0;
      for (int r = 0; r < rows; ++r) mean += s[c * ld + r] + res[c * ld + r];
      mean /= rows;
      for (int r = 0; r < rows; ++r) {
        const double d = s[c * ld + r] + res[c * ld + r] - mean;
        var += d * d;
      }
      var /= rows;
      for (int r = 0; r < rows; ++r) {
        const double want = (s[c * ld + r] + res[c * ld + r] - mean) /
                                std::sqrt(var + 1e-12) * gamma[r] +
                            beta[r];
        EXPECT_NEAR(got[c * ld + r], want, 2e-6) << k->isa;
      }
    }
  }
}

TEST(KernelsTest, LevelsFollowTheCpu) {
  const std::vector<const KernelTable*> levels = SupportedKernels();
  ASSERT_FALSE(levels.empty());
#if defined(__x86_64__)
  std::vector<std::string> want;
  for (int level : {2, 3, 4}) {
    if (CpuHasLevel(level)) want.push_back("v" + std::to_string(level));
  }
  if (want.empty()) want.push_back("generic");
  std::vector<std::string> got;
  for (const KernelTable* k : levels) got.push_back(k->isa);
  EXPECT_EQ(got, want);
#endif
  auto best = FindKernels("auto");
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(*best, levels.back());
  EXPECT_EQ(&DefaultKernels(), levels.back());
  for (const KernelTable* k : levels) {
    ASSERT_TRUE(SetDefaultKernels(k->isa).ok()) << k->isa;
    EXPECT_EQ(&DefaultKernels(), k);
  }
  ASSERT_TRUE(SetDefaultKernels("auto").ok());
  EXPECT_EQ(&DefaultKernels(), levels.back());

  auto bad = FindKernels("avx9");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("unknown CPU level \"avx9\""));
#if defined(__x86_64__)
  if (!CpuHasLevel(4)) {
    auto v4 = FindKernels("v4");
    EXPECT_EQ(v4.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(v4.status().message(), HasSubstr("cannot run the v4 kernels"));
  }
#endif
}

}  // namespace
}  // namespace ctxembed
