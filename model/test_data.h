// Where tests find their data: the source tree (CTXEMBED_SOURCE_DIR, set by
// CTest) and the shared folder beside the checkout (CTXEMBED_SHARED_DIR,
// default SOURCE/../shared). For tests only.
#ifndef CTXEMBED_MODEL_TEST_DATA_H_
#define CTXEMBED_MODEL_TEST_DATA_H_

#include <cstdlib>
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

}  // namespace ctxembed::testing

#endif  // CTXEMBED_MODEL_TEST_DATA_H_
