// Parity with fastText: ctxembed's word and sentence vectors against the
// fastText CLI's print-word-vectors / print-sentence-vectors (to its
// printed precision) and against fastText's Python binding (bit for bit).
// The reference files come from tests/golden/generate.sh.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "model/model.h"
#include "model/test_data.h"

namespace ctxembed {
namespace {

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// What fastText's `std::cout << std::setprecision(5) << float` prints.
std::string Printed(const float* v, int n) {
  std::string out;
  char buf[32];
  for (int i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%.5g ", static_cast<double>(v[i]));
    out += buf;
  }
  return out;
}

Eigen::VectorXf SentenceVector(const Model& model, const std::string& text) {
  std::vector<TokenList> sentences(1);
  model.tokenizer().Tokenize(text, &sentences[0]);
  TowerScratch scratch;
  Eigen::MatrixXf pooled;
  model.tower(0).Embed(sentences, Pooling::kFastText, scratch, &pooled);
  return pooled.col(0);
}

Eigen::VectorXf WordVector(const Model& model, const std::string& word) {
  Eigen::VectorXf v(model.dim());
  model.word_vectors().Lookup(word, v.data());
  return v;
}

// Checks every line of a print-word-vectors output ("word v1 .. vd ").
void CheckWords(const Model& model, const std::string& expected_path) {
  const std::vector<std::string> lines = ReadLines(expected_path);
  ASSERT_FALSE(lines.empty()) << expected_path;
  for (const std::string& line : lines) {
    const size_t space = line.find(' ');
    const std::string word = line.substr(0, space);
    Eigen::VectorXf v = WordVector(model, word);
    EXPECT_EQ(Printed(v.data(), model.dim()), line.substr(space + 1))
        << expected_path << ": word \"" << word << "\"";
  }
}

void CheckSentences(const Model& model, const std::string& expected_path) {
  const std::vector<std::string> queries =
      ReadLines(testing::GoldenDir() + "/queries_sentences.txt");
  const std::vector<std::string> lines = ReadLines(expected_path);
  ASSERT_EQ(lines.size(), queries.size()) << expected_path;
  for (size_t i = 0; i < lines.size(); ++i) {
    Eigen::VectorXf v = SentenceVector(model, queries[i]);
    EXPECT_EQ(Printed(v.data(), model.dim()), lines[i])
        << expected_path << ": sentence " << i << " \"" << queries[i] << "\"";
  }
}

// Checks "W\tword\thex.." and "S\tindex\thex.." lines bit for bit.
void CheckExact(const Model& model, const std::string& path) {
  const std::vector<std::string> queries =
      ReadLines(testing::GoldenDir() + "/queries_sentences.txt");
  int checked = 0;
  for (const std::string& line : ReadLines(path)) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    ASSERT_EQ(f.size(), 3u) << line;
    Eigen::VectorXf got = f[0] == "W"
                              ? WordVector(model, f[1])
                              : SentenceVector(model, queries[std::stoi(f[1])]);
    std::vector<std::string> hex = absl::StrSplit(f[2], ' ');
    ASSERT_EQ(hex.size(), static_cast<size_t>(model.dim())) << line;
    for (int j = 0; j < model.dim(); ++j) {
      const float want = std::strtof(hex[j].c_str(), nullptr);
      uint32_t a, b;
      std::memcpy(&a, &got[j], 4);
      std::memcpy(&b, &want, 4);
      EXPECT_EQ(a, b) << path << ": " << f[0] << " " << f[1] << " value " << j
                      << ": got " << got[j] << ", fastText " << want;
    }
    ++checked;
  }
  EXPECT_GT(checked, 30) << path;
}

class GoldenModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenModelTest, MatchesFastTextCli) {
  const std::string dir = testing::GoldenDir();
  auto model = Model::Load(dir + "/models/" + GetParam());
  ASSERT_TRUE(model.ok()) << model.status();
  CheckWords(**model, dir + "/expected/" + GetParam() + ".words.txt");
  CheckSentences(**model, dir + "/expected/" + GetParam() + ".sentences.txt");
}

TEST_P(GoldenModelTest, MatchesFastTextBitForBit) {
  const std::string dir = testing::GoldenDir();
  auto model = Model::Load(dir + "/models/" + GetParam());
  ASSERT_TRUE(model.ok()) << model.status();
  CheckExact(**model, dir + "/expected/" + GetParam() + ".exact.txt");
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenModelTest,
                         ::testing::Values("sg_d8", "cbow_d12", "sg_minn1",
                                           "sg_nosub"));

// The .vec and word2vec tables hold print-precision copies of sg_d8's
// vocabulary vectors: those words print the same; other words are zero.
TEST(GoldenTableTest, VecAndWord2VecMatchTheBinForVocabularyWords) {
  const std::string dir = testing::GoldenDir();
  auto bin = Model::Load(dir + "/models/sg_d8");
  ASSERT_TRUE(bin.ok()) << bin.status();
  for (const char* name : {"sg_d8_vec", "sg_d8_w2v"}) {
    auto table = Model::Load(dir + "/models/" + name);
    ASSERT_TRUE(table.ok()) << table.status();
    int in_vocab = 0;
    for (const std::string& word : ReadLines(dir + "/queries_words.txt")) {
      Eigen::VectorXf got = WordVector(**table, word);
      if ((*bin)->word_vectors().Contains(word)) {
        Eigen::VectorXf want = WordVector(**bin, word);
        EXPECT_EQ(Printed(got.data(), 8), Printed(want.data(), 8))
            << name << ": " << word;
        ++in_vocab;
      } else {
        EXPECT_TRUE(got.isZero()) << name << ": " << word;
      }
    }
    EXPECT_GT(in_vocab, 5) << name;
  }
}

// fastText files written by other tools (../shared/data/fasttext-external).
class ExternalModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExternalModelTest, MatchesFastTextCli) {
  const std::string file =
      testing::SharedDir() + "/data/fasttext-external/" + GetParam() + ".bin";
  if (auto m = testing::MissingSharedData(file); !m.empty()) GTEST_SKIP() << m;
  auto vectors = LoadWordVectors(file);
  ASSERT_TRUE(vectors.ok()) << vectors.status();
  auto model = Model::FromWordVectors("external", std::move(*vectors));
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string expected =
      testing::GoldenDir() + "/expected/external." + GetParam();
  CheckWords(**model, expected + ".words.txt");
  // fastText's sentence vector of a supervised model is another formula
  // (the mean of raw input rows, word n-grams included); ctxembed's
  // "fasttext" pooling is the unsupervised one.
  if (GetParam() != "pang_lee_polarity_fasttext") {
    CheckSentences(**model, expected + ".sentences.txt");
  }
}

INSTANTIATE_TEST_SUITE_P(Files, ExternalModelTest,
                         ::testing::Values("crime-and-punishment", "toy-model",
                                           "lee_fasttext_new",
                                           "pang_lee_polarity_fasttext"));

}  // namespace
}  // namespace ctxembed
