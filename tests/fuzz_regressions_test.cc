// Every input a fuzzer once failed on (tests/fuzz/regressions/<target>/),
// run through the same parser in the normal and sanitizer builds: each must
// be refused (or accepted) cleanly. The error expected for a file, if any,
// is in a sibling file with the extension ".expected".
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/fasttext_vectors.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/static_vectors.h"
#include "model/test_data.h"
#include "model/word_vectors.h"

namespace ctxembed {
namespace {

std::string Read(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::Status Parse(const std::string& target, const std::string& data) {
  if (target == "fasttext_bin")
    return FastTextVectors::Parse(data, "f").status();
  if (target == "vec_text") return StaticVectors::ParseText(data, "f").status();
  if (target == "word2vec_bin") {
    return StaticVectors::ParseBinary(data, "f").status();
  }
  if (target == "word_vectors") return ParseWordVectors(data, "f").status();
  if (target == "safetensors") return SafeTensors::Parse(data, "f").status();
  if (target == "config") return ParseModelConfig(data, "f").status();
  ADD_FAILURE() << "no parser for regressions/" << target;
  return absl::OkStatus();
}

TEST(FuzzRegressionsTest, EveryReproducerIsHandledCleanly) {
  const std::filesystem::path root =
      testing::SourceDir() + "/tests/fuzz/regressions";
  int files = 0;
  for (const auto& dir : std::filesystem::directory_iterator(root)) {
    for (const auto& file : std::filesystem::directory_iterator(dir)) {
      if (file.path().extension() == ".expected") continue;
      const std::string target = dir.path().filename().string();
      const absl::Status status = Parse(target, Read(file.path()));
      std::filesystem::path expected = file.path();
      expected.replace_extension(".expected");
      if (std::filesystem::exists(expected)) {
        std::string want = Read(expected);
        while (!want.empty() && want.back() == '\n') want.pop_back();
        EXPECT_NE(status.ToString().find(want), std::string::npos)
            << file.path() << ": " << status;
      }
      ++files;
    }
  }
  EXPECT_GT(files, 0);
}

}  // namespace
}  // namespace ctxembed
