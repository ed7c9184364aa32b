#include "model/pooling.h"

#include <gtest/gtest.h>

namespace ctxembed {
namespace {

TEST(PoolingTest, ParsesNames) {
  EXPECT_EQ(*ParsePooling("fasttext"), Pooling::kFastText);
  EXPECT_EQ(*ParsePooling("mean"), Pooling::kMean);
  EXPECT_EQ(*ParsePooling("max"), Pooling::kMax);
  EXPECT_EQ(*ParsePooling("last"), Pooling::kLast);
  EXPECT_EQ(*ParsePooling("cls"), Pooling::kCls);
  EXPECT_EQ(*ParsePooling("mean_sqrt_len"), Pooling::kMeanSqrtLen);
  EXPECT_EQ(ParsePooling("weightedmean").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PoolingName(Pooling::kMax), "max");
  EXPECT_EQ(PoolingName(Pooling::kMeanSqrtLen), "mean_sqrt_len");
}

TEST(PoolingTest, ClsAndMeanSqrtLen) {
  Eigen::MatrixXf tokens(2, 4);
  tokens << 1, 2, 3, 4,  //
      -1, 0, 1, 2;
  Eigen::VectorXf out(2);
  Pool(tokens, Pooling::kCls, out);
  EXPECT_FLOAT_EQ(out[0], 1);
  EXPECT_FLOAT_EQ(out[1], -1);
  Pool(tokens, Pooling::kMeanSqrtLen, out);
  EXPECT_FLOAT_EQ(out[0], 10.0f / 2);
  EXPECT_FLOAT_EQ(out[1], 2.0f / 2);
}

TEST(PoolingTest, MeanAndMax) {
  Eigen::MatrixXf tokens(2, 3);
  tokens << 1, 2, 6,  //
      -1, -4, 2;
  Eigen::VectorXf out(2);
  Pool(tokens, Pooling::kMean, out);
  EXPECT_FLOAT_EQ(out[0], 3.0f);
  EXPECT_FLOAT_EQ(out[1], -1.0f);
  Pool(tokens, Pooling::kMax, out);
  EXPECT_FLOAT_EQ(out[0], 6.0f);
  EXPECT_FLOAT_EQ(out[1], 2.0f);
}

TEST(PoolingTest, FastTextAveragesUnitVectorsAndSkipsZeros) {
  Eigen::MatrixXf tokens(2, 3);
  tokens << 3, 0, 0,  //
      4, 0, 2;
  Eigen::VectorXf out(2);
  Pool(tokens, Pooling::kFastText, out);
  // (0.6, 0.8) and (0, 1) averaged; the zero column does not count.
  EXPECT_FLOAT_EQ(out[0], 0.3f);
  EXPECT_FLOAT_EQ(out[1], 0.9f);
}

TEST(PoolingTest, NoTokensGiveTheZeroVector) {
  Eigen::MatrixXf tokens(4, 0);
  Eigen::VectorXf out(4);
  for (Pooling p : {Pooling::kFastText, Pooling::kMean, Pooling::kMax}) {
    out.setOnes();
    Pool(tokens, p, out);
    ASSERT_EQ(out.size(), 4);
    EXPECT_TRUE(out.isZero()) << PoolingName(p);
  }
}

TEST(PoolingTest, NormalizeL2) {
  Eigen::VectorXf v(2);
  v << 3, 4;
  NormalizeL2(v);
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  Eigen::VectorXf zero = Eigen::VectorXf::Zero(3);
  NormalizeL2(zero);
  EXPECT_TRUE(zero.isZero());
}

}  // namespace
}  // namespace ctxembed
