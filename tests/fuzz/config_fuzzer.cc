// libFuzzer target: config.json parsing on arbitrary bytes.
#include <cstddef>
#include <cstdint>

#include "model/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config = ctxembed::ParseModelConfig(
      absl::string_view(reinterpret_cast<const char*>(data), size),
      "config.json");
  if (config.ok()) (void)config->NeedsWeights();
  return 0;
}
