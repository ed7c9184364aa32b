// The tolerance of the golden parity tests: |got - want| <= 1e-5, or
// <= 1e-4 * |want|, element by element. For tests only.
#ifndef CTXEMBED_TESTS_GOLDEN_COMPARE_H_
#define CTXEMBED_TESTS_GOLDEN_COMPARE_H_

#include <gtest/gtest.h>

#include <Eigen/Core>
#include <cmath>
#include <string>

namespace ctxembed::testing {

// Adds one failure naming `what`, the element and both values at the first
// element out of tolerance (or on a shape mismatch).
inline void ExpectClose(const Eigen::Ref<const Eigen::MatrixXf>& got,
                        const Eigen::Ref<const Eigen::MatrixXf>& want,
                        const std::string& what) {
  ASSERT_EQ(got.rows(), want.rows()) << what;
  ASSERT_EQ(got.cols(), want.cols()) << what;
  for (Eigen::Index j = 0; j < got.cols(); ++j) {
    for (Eigen::Index i = 0; i < got.rows(); ++i) {
      const float diff = std::abs(got(i, j) - want(i, j));
      if (diff > 1e-5f && diff > 1e-4f * std::abs(want(i, j))) {
        ADD_FAILURE() << what << " (" << i << ", " << j << "): got "
                      << got(i, j) << ", reference " << want(i, j);
        return;
      }
    }
  }
}

}  // namespace ctxembed::testing

#endif  // CTXEMBED_TESTS_GOLDEN_COMPARE_H_
