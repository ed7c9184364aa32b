// Random-weight encoders for benchmarks: a safetensors image built in memory
// with PyTorch's names and default init range (U(-1/sqrt(H), 1/sqrt(H))).
#ifndef CTXEMBED_BENCH_RANDOM_WEIGHTS_H_
#define CTXEMBED_BENCH_RANDOM_WEIGHTS_H_

#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "model/recurrent_module.h"

namespace ctxembed::bench {

// The safetensors bytes of `config`'s weights.
inline std::string RandomWeights(const RecurrentConfig& config,
                                 unsigned seed = 1) {
  std::mt19937 rng(seed);
  const int H = config.hidden_size,
            G = config.kind == RecurrentKind::kLstm ? 4 : 3;
  const int D = config.bidirectional ? 2 : 1;
  const float bound = 1.0f / std::sqrt(static_cast<float>(H));
  std::uniform_real_distribution<float> dist(-bound, bound);
  std::string header = "{", data;
  auto add = [&](const std::string& name, int rows, int cols) {
    const size_t n = static_cast<size_t>(rows) * (cols > 0 ? cols : 1);
    std::string shape =
        cols > 0 ? absl::StrCat(rows, ",", cols) : absl::StrCat(rows);
    absl::StrAppend(&header, header.size() > 1 ? "," : "", "\"", name,
                    "\":{\"dtype\":\"F32\",\"shape\":[", shape,
                    "],\"data_offsets\":[", data.size(), ",",
                    data.size() + 4 * n, "]}");
    for (size_t i = 0; i < n; ++i) {
      const float v = dist(rng);
      data.append(reinterpret_cast<const char*>(&v), 4);
    }
  };
  for (int k = 0; k < config.num_layers; ++k) {
    for (int d = 0; d < D; ++d) {
      const std::string s = absl::StrCat("_l", k, d ? "_reverse" : "");
      const int in = k == 0 ? config.input_size : D * H;
      add(config.prefix + ".weight_ih" + s, G * H, in);
      add(config.prefix + ".weight_hh" + s, G * H, H);
      add(config.prefix + ".bias_ih" + s, G * H, 0);
      add(config.prefix + ".bias_hh" + s, G * H, 0);
    }
  }
  header += "}";
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(&out[0], &n, 8);
  return out + header + data;
}

}  // namespace ctxembed::bench

#endif  // CTXEMBED_BENCH_RANDOM_WEIGHTS_H_
