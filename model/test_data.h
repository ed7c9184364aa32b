// Where tests find their data: the source tree (CTXEMBED_SOURCE_DIR, set by
// CTest) and the shared folder beside the checkout (CTXEMBED_SHARED_DIR,
// default SOURCE/../shared). For tests only.
#ifndef CTXEMBED_MODEL_TEST_DATA_H_
#define CTXEMBED_MODEL_TEST_DATA_H_

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace ctxembed::testing {

inline std::string SourceDir() {
  const char* dir = std::getenv("CTXEMBED_SOURCE_DIR");
  return dir != nullptr ? dir : ".";
}

inline std::string GoldenDir() { return SourceDir() + "/tests/golden"; }

inline std::string SharedDir() {
  const char* dir = std::getenv("CTXEMBED_SHARED_DIR");
  return dir != nullptr ? dir : SourceDir() + "/../shared";
}

// "" if `path` exists; otherwise the message a test that needs it skips
// with (a user's clone has no ../shared; CI's has):
//   if (auto m = MissingSharedData(dir); !m.empty()) GTEST_SKIP() << m;
inline std::string MissingSharedData(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0) return "";
  return path +
         " is missing (../shared is not beside this checkout, or "
         "CTXEMBED_SHARED_DIR is unset): skipped";
}

// A fresh directory under /tmp, removed with everything in it when the
// object goes.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ctxembed_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf " + path_).c_str()); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `bytes` to the file `name` in the directory.
  void Write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path_ + "/" + name, std::ios::binary) << bytes;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace ctxembed::testing

#endif  // CTXEMBED_MODEL_TEST_DATA_H_
