#include "model/fasttext_vectors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "model/mapped_file.h"
#include "model/test_data.h"
#include "model/word_vectors.h"

namespace ctxembed {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadGoldenModel(const std::string& name) {
  auto data = ReadFileToString(testing::GoldenDir() + "/models/" + name +
                               "/vectors.bin");
  EXPECT_TRUE(data.ok()) << data.status();
  return data.ok() ? *data : "";
}

TEST(FastTextHashTest, MatchesFnv1aOverSignExtendedBytes) {
  EXPECT_EQ(FastTextHash(""), 2166136261u);
  EXPECT_EQ(FastTextHash("a"), 3826002220u);
  EXPECT_EQ(FastTextHash("<the>"), 4243648960u);
  // Bytes >= 0x80 mix in sign-extended, unlike textbook FNV-1a.
  EXPECT_EQ(FastTextHash("é"), 1023043777u);
  EXPECT_EQ(FastTextHash("東京"), 1997330287u);
}

TEST(FastTextVectorsTest, ReadsHeaderOfGoldenModel) {
  const std::string data = ReadGoldenModel("sg_d8");
  auto v = FastTextVectors::Parse(data, "sg_d8");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->dim(), 8);
  EXPECT_EQ((*v)->args().model, 2);
  EXPECT_EQ((*v)->args().bucket, 500);
  EXPECT_EQ((*v)->args().minn, 3);
  EXPECT_EQ((*v)->args().maxn, 6);
  EXPECT_TRUE((*v)->Contains("the"));
  EXPECT_TRUE((*v)->Contains("</s>"));
  EXPECT_FALSE((*v)->Contains("zzyzzx"));
}

TEST(FastTextVectorsTest, EndOfSentenceHasNoNgrams) {
  const std::string data = ReadGoldenModel("sg_d8");
  auto v = FastTextVectors::Parse(data, "sg_d8");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ((*v)->RowsOf("</s>").size(), 1u);
  // "<é>" with minn 3: only the whole 3-character n-gram "<é>", which has
  // four bytes; single characters never count at minn 3.
  std::vector<int64_t> rows = (*v)->RowsOf("é");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0] - static_cast<int64_t>((*v)->vocab_size()),
            FastTextHash("<é>") % 500);
}

TEST(FastTextVectorsTest, NgramsAreUtf8Characters) {
  const std::string data = ReadGoldenModel("sg_minn1");
  auto v = FastTextVectors::Parse(data, "sg_minn1");
  ASSERT_TRUE(v.ok());
  const int64_t nwords = static_cast<int64_t>((*v)->vocab_size());
  std::vector<int64_t> expected;
  // minn 1, maxn 3 over "<東京>": one-character n-grams skip "<" and ">".
  for (const char* g : {"<東", "<東京", "東", "東京", "東京>", "京", "京>"}) {
    expected.push_back(nwords + FastTextHash(g) % 200);
  }
  std::vector<int64_t> rows = (*v)->RowsOf("東京");
  if (!rows.empty() && rows.size() == expected.size() + 1) {
    rows.erase(rows.begin());  // its own row, if the word is in the vocabulary
  }
  EXPECT_EQ(rows, expected);
}

TEST(FastTextVectorsTest, NoSubwordModelGivesZeroForUnknownWords) {
  const std::string data = ReadGoldenModel("sg_nosub");
  auto v = FastTextVectors::Parse(data, "sg_nosub");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE((*v)->RowsOf("zzyzzx").empty());
  std::vector<float> out(6, 1.0f);
  (*v)->Lookup("zzyzzx", out.data());
  EXPECT_THAT(out, ElementsAre(0, 0, 0, 0, 0, 0));
}

TEST(FastTextVectorsTest, ReadsFilesFromOtherTools) {
  const std::string dir = testing::SharedDir() + "/data/fasttext-external/";
  if (auto m = testing::MissingSharedData(dir); !m.empty()) GTEST_SKIP() << m;
  struct Case {
    const char* file;
    int dim, model, version;
  } cases[] = {{"crime-and-punishment.bin", 5, 2, 12},
               {"toy-model.bin", 5, 1, 12},
               {"lee_fasttext_new.bin", 10, 2, 11},
               {"pang_lee_polarity_fasttext.bin", 100, 3, 12}};
  for (const Case& c : cases) {
    auto data = ReadFileToString(dir + c.file);
    ASSERT_TRUE(data.ok()) << data.status();
    auto v = FastTextVectors::Parse(*data, c.file);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ((*v)->dim(), c.dim) << c.file;
    EXPECT_EQ((*v)->args().model, c.model) << c.file;
    EXPECT_EQ((*v)->args().version, c.version) << c.file;
  }
}

TEST(FastTextVectorsTest, RefusesFilesFromBeforeVersion09) {
  const std::string dir = testing::SharedDir() + "/data/fasttext-external/";
  if (auto m = testing::MissingSharedData(dir); !m.empty()) GTEST_SKIP() << m;
  for (const char* f :
       {"non_ascii_fasttext.bin", "cp852_fasttext.bin", "lee_fasttext.bin"}) {
    auto v = LoadWordVectors(dir + f);
    ASSERT_FALSE(v.ok()) << f;
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(v.status().ToString(), HasSubstr(f));
    EXPECT_THAT(v.status().ToString(), HasSubstr("before version 0.9"));
  }
}

TEST(FastTextVectorsTest, EveryTruncationIsRefused) {
  const std::string data = ReadGoldenModel("sg_d8");
  ASSERT_GT(data.size(), 1000u);
  int checked = 0;
  for (size_t n = 0; n < data.size(); n += (n < 8000 ? 1 : 61)) {
    auto v = ParseWordVectors(data.substr(0, n), "cut.bin");
    ASSERT_FALSE(v.ok()) << "a prefix of " << n << " bytes was accepted";
    ++checked;
  }
  EXPECT_FALSE(ParseWordVectors(data.substr(0, data.size() - 1), "cut").ok());
  EXPECT_GT(checked, 8000);
  EXPECT_THAT(ParseWordVectors(data + "x", "long.bin").status().ToString(),
              HasSubstr("1 unexpected bytes after the output matrix"));
}

// Overwrites a little-endian value at `offset` of a copy of `data`.
template <typename T>
std::string Patch(std::string data, size_t offset, T value) {
  data.replace(offset, sizeof(T), reinterpret_cast<const char*>(&value),
               sizeof(T));
  return data;
}

TEST(FastTextVectorsTest, CorruptHeadersAreRefusedWithoutAllocating) {
  const std::string data = ReadGoldenModel("sg_d8");
  struct Case {
    std::string bytes;
    const char* expected;
  } cases[] = {
      {Patch<int32_t>(data, 0, 0x7FFFFFFF), "not a fastText .bin"},
      {Patch<int32_t>(data, 4, 13), "unsupported fastText format version 13"},
      {Patch<int32_t>(data, 8, 0), "dim 0 is outside"},
      {Patch<int32_t>(data, 8, 1 << 30), "dim 1073741824 is outside"},
      {Patch<int32_t>(data, 40, -5), "negative bucket -5"},
      {Patch<int32_t>(data, 40, 0), "bucket is 0"},
      {Patch<int32_t>(data, 64, 2000000000), "dictionary sizes disagree"},
      {Patch<int32_t>(Patch<int32_t>(data, 64, 2000000000), 68, 2000000000),
       "the file is too short"},
      {Patch<int64_t>(data, 84, int64_t{1} << 40), "pruneidx_size"},
  };
  for (const Case& c : cases) {
    auto v = ParseWordVectors(c.bytes, "bad.bin");
    ASSERT_FALSE(v.ok()) << c.expected;
    EXPECT_THAT(v.status().ToString(), HasSubstr(c.expected));
    EXPECT_THAT(v.status().ToString(), HasSubstr("bad.bin"));
  }
}

}  // namespace
}  // namespace ctxembed
