// libFuzzer target: the safetensors parser on arbitrary bytes, and reading
// every tensor of what parses (as a vector of all its elements).
#include <cstddef>
#include <cstdint>

#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto st = ctxembed::SafeTensors::Parse(bytes, "fuzz");
  if (!st.ok()) return 0;
  for (const std::string& name : (*st)->Names()) {
    auto info = (*st)->Info(name);
    if (!info.ok()) continue;
    int64_t n = 1;
    bool small = true;
    for (int64_t d : (*info)->shape) {
      if (d < 0 || (d > 0 && n > (int64_t{1} << 20) / d)) small = false;
      n *= small ? d : 1;
    }
    if (!small) continue;
    (void)(*st)->ReadVector(name, n);
    if ((*info)->shape.size() == 2) {
      (void)(*st)->ReadMatrix(name, (*info)->shape[0], (*info)->shape[1]);
    }
  }
  return 0;
}
