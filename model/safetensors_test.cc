#include "model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

namespace ctxembed {
namespace {

using ::testing::HasSubstr;

// A safetensors image from a header text and raw data bytes.
std::string File(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(&out[0], &n, 8);
  return out + header + data;
}

std::string Floats(std::initializer_list<float> values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(&out[0], values.begin(), out.size());
  return out;
}

TEST(SafeTensorsTest, ReadsF32F16AndBF16) {
  // F16 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal 0x0001;
  // BF16 1.0 = 0x3F80, -0.5 = 0xBF00.
  const std::string f16("\x00\x3C\x00\xC0\xFF\x7B\x01\x00", 8);
  const std::string bf16("\x80\x3F\x00\xBF", 4);
  const std::string data = Floats({1.5f, -2.25f}) + f16 + bf16;
  // Parse keeps views into the bytes: they must outlive it.
  const std::string file =
      File(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
           R"("b":{"dtype":"F16","shape":[2,2],"data_offsets":[8,16]},)"
           R"("c":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]},)"
           R"("__metadata__":{"format":"pt"}})",
           data);
  auto st = SafeTensors::Parse(file, "t.safetensors");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ((*st)->Names(), (std::vector<std::string>{"a", "b", "c"}));
  auto a = (*st)->ReadVector("a", 2);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)[1], -2.25f);
  auto b = (*st)->ReadMatrix("b", 2, 2);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)(0, 0), 1.0f);
  EXPECT_EQ((*b)(0, 1), -2.0f);
  EXPECT_EQ((*b)(1, 0), 65504.0f);
  EXPECT_EQ((*b)(1, 1), 5.9604645e-08f);
  auto c = (*st)->ReadVector("c", 2);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)[0], 1.0f);
  EXPECT_EQ((*c)[1], -0.5f);
}

TEST(SafeTensorsTest, ShapeMismatchNamesTheTensor) {
  const std::string file = File(
      R"({"rnn.weight_ih_l0":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}})",
      Floats({1, 2}));
  auto st = SafeTensors::Parse(file, "w.safetensors");
  ASSERT_TRUE(st.ok());
  auto m = (*st)->ReadMatrix("rnn.weight_ih_l0", 1, 2);
  EXPECT_THAT(m.status().ToString(),
              HasSubstr("w.safetensors: tensor rnn.weight_ih_l0: expected "
                        "shape [1, 2], got [2, 1]"));
  EXPECT_EQ((*st)->ReadVector("missing", 1).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SafeTensorsTest, RefusesMalformedFiles) {
  const std::string two = Floats({1, 2});
  struct Case {
    std::string file;
    const char* expected;
  } cases[] = {
      {"abc", "starts with an 8-byte header length"},
      {File("{}", "").substr(0, 9), "exceeds the file"},
      {std::string("\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x7F", 8) + "{}",
       "exceeds the file"},
      {File("[1]", ""), "does not start with '{'"},
      {File("{\"a\":", ""), "not valid JSON"},
      {File(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", two),
       "dtype \"I64\" is not supported"},
      {File(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", two),
       "shape [3] needs 12 bytes; data_offsets span 8"},
      {File(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", two),
       "are outside the 8 data bytes"},
      {File(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", two),
       "starts at data byte 4; the previous tensor ends at 0"},
      {File(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", two),
       "tensors cover 4 of the 8 data bytes"},
      {File(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
            R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            two),
       "tensor a appears twice"},
      {File(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}})", two),
       "bad dimension -1"},
      {File(R"({"a":{"dtype":"F32","shape":[2]}})", two),
       "needs dtype, shape and data_offsets"},
      // 2^40 x 2^40 wraps to 0 elements in 64 bits: with empty data it was
      // accepted, and reading it asked for 2^80 floats (std::bad_alloc).
      {File(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],)"
            R"("data_offsets":[0,0]}})",
            ""),
       "shape [1099511627776, 1099511627776] has more than 2^40 elements"},
  };
  for (const Case& c : cases) {
    auto st = SafeTensors::Parse(c.file, "bad.safetensors");
    ASSERT_FALSE(st.ok()) << c.expected;
    EXPECT_THAT(st.status().ToString(), HasSubstr("bad.safetensors"));
    EXPECT_THAT(st.status().ToString(), HasSubstr(c.expected));
  }
}

TEST(SafeTensorsTest, EveryTruncationIsRefused) {
  const std::string file =
      File(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
           Floats({1, 2}));
  for (size_t n = 0; n < file.size(); ++n) {
    EXPECT_FALSE(SafeTensors::Parse(file.substr(0, n), "cut").ok()) << n;
  }
}

}  // namespace
}  // namespace ctxembed
