// Random-weight BERT encoders for the model tests (bert_encoder_test,
// hf_model_test). For tests only.
#ifndef CTXEMBED_MODEL_BERT_TEST_UTIL_H_
#define CTXEMBED_MODEL_BERT_TEST_UTIL_H_

#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/bert_encoder.h"

namespace ctxembed::testing {

// A safetensors file of random F32 tensors (parity with PyTorch is
// tests/python/test_transformer.py's; the C++ tests check structure).
class RandomWeights {
 public:
  explicit RandomWeights(std::string prefix = "")
      : prefix_(std::move(prefix)) {}
  void Add(const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(n);
    for (float& x : v) x = dist_(rng_);
    tensors_[prefix_ + name] = {std::move(shape), std::move(v)};
  }
  std::string Bytes() const {
    std::string header = "{", data;
    for (const auto& [name, t] : tensors_) {
      const size_t begin = data.size();
      data.append(reinterpret_cast<const char*>(t.second.data()),
                  t.second.size() * sizeof(float));
      std::string shape;
      for (int64_t d : t.first)
        absl::StrAppend(&shape, shape.empty() ? "" : ",", d);
      absl::StrAppend(&header, header.size() > 1 ? "," : "", "\"", name,
                      "\":{\"dtype\":\"F32\",\"shape\":[", shape,
                      "],\"data_offsets\":[", begin, ",", data.size(), "]}");
    }
    header += "}";
    uint64_t len = header.size();
    std::string out(8, '\0');
    std::memcpy(&out[0], &len, 8);
    return out + header + data;
  }

 private:
  const std::string prefix_;
  std::mt19937 rng_{42};
  std::normal_distribution<float> dist_{0.0f, 0.1f};
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>
      tensors_;
};

inline BertConfig SmallBertConfig() {
  BertConfig c;
  c.vocab_size = 10;
  c.hidden_size = 16;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.intermediate_size = 24;
  c.max_position_embeddings = 20;
  c.type_vocab_size = 2;
  return c;
}

// Random tensors for the encoder of `c`, named under `prefix`, plus the
// word embeddings when `words` is set; with `skip_last_norm` the last
// layer's output LayerNorm is missing.
inline std::string SmallBertWeights(const BertConfig& c,
                                    bool skip_last_norm = false,
                                    const std::string& prefix = "",
                                    bool words = false) {
  RandomWeights w(prefix);
  if (words) {
    w.Add("embeddings.word_embeddings.weight", {c.vocab_size, c.hidden_size});
  }
  const int64_t h = c.hidden_size, i = c.intermediate_size;
  w.Add("embeddings.position_embeddings.weight",
        {c.max_position_embeddings, h});
  w.Add("embeddings.token_type_embeddings.weight", {c.type_vocab_size, h});
  w.Add("embeddings.LayerNorm.weight", {h});
  w.Add("embeddings.LayerNorm.bias", {h});
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = absl::StrCat("encoder.layer.", l, ".");
    for (const char* part : {"query", "key", "value"}) {
      w.Add(absl::StrCat(p, "attention.self.", part, ".weight"), {h, h});
      w.Add(absl::StrCat(p, "attention.self.", part, ".bias"), {h});
    }
    w.Add(p + "attention.output.dense.weight", {h, h});
    w.Add(p + "attention.output.dense.bias", {h});
    w.Add(p + "attention.output.LayerNorm.weight", {h});
    w.Add(p + "attention.output.LayerNorm.bias", {h});
    w.Add(p + "intermediate.dense.weight", {i, h});
    w.Add(p + "intermediate.dense.bias", {i});
    w.Add(p + "output.dense.weight", {h, i});
    w.Add(p + "output.dense.bias", {h});
    if (!(skip_last_norm && l + 1 == c.num_hidden_layers)) {
      w.Add(p + "output.LayerNorm.weight", {h});
      w.Add(p + "output.LayerNorm.bias", {h});
    }
  }
  return w.Bytes();
}

}  // namespace ctxembed::testing

#endif  // CTXEMBED_MODEL_BERT_TEST_UTIL_H_
