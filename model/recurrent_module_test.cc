#include "model/recurrent_module.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

namespace ctxembed {
namespace {

using ::testing::HasSubstr;

// Builds a safetensors image from {name: (shape, values)}.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
std::string Build(const std::map<std::string, Tensor>& tensors) {
  std::string header = "{", data;
  for (const auto& [name, t] : tensors) {
    if (header.size() > 1) header += ",";
    std::string shape;
    for (int64_t d : t.shape)
      shape += (shape.empty() ? "" : ",") + std::to_string(d);
    header += "\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + shape +
              "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + 4 * t.values.size()) + "]}";
    data.append(reinterpret_cast<const char*>(t.values.data()),
                4 * t.values.size());
  }
  header += "}";
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(&out[0], &n, 8);
  return out + header + data;
}

double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// One-unit LSTM, input size 1: every weight and bias chosen by hand.
std::map<std::string, Tensor> TinyLstm(const std::string& suffix) {
  return {{"r.weight_ih" + suffix, {{4, 1}, {0.5f, -0.3f, 0.8f, 0.1f}}},
          {"r.weight_hh" + suffix, {{4, 1}, {0.2f, 0.4f, -0.6f, 0.7f}}},
          {"r.bias_ih" + suffix, {{4}, {0.1f, 0.2f, 0.0f, -0.1f}}},
          {"r.bias_hh" + suffix, {{4}, {0.0f, 0.1f, 0.05f, 0.0f}}}};
}

// The same LSTM in double precision, straight from PyTorch's equations.
std::vector<double> ReferenceLstm(const std::vector<double>& xs) {
  const double wi[4] = {0.5, -0.3, 0.8, 0.1}, wh[4] = {0.2, 0.4, -0.6, 0.7},
               b[4] = {0.1, 0.3, 0.05, -0.1};
  double h = 0, c = 0;
  std::vector<double> out;
  for (double x : xs) {
    double g[4];
    for (int k = 0; k < 4; ++k) g[k] = wi[k] * x + wh[k] * h + b[k];
    c = Sigmoid(g[1]) * c + Sigmoid(g[0]) * std::tanh(g[2]);
    h = Sigmoid(g[3]) * std::tanh(c);
    out.push_back(h);
  }
  return out;
}

TEST(RecurrentModuleTest, BidirectionalLstmFollowsPyTorchEquations) {
  auto tensors = TinyLstm("_l0");
  tensors.merge(TinyLstm("_l0_reverse"));
  const std::string file = Build(tensors);
  auto st = SafeTensors::Parse(file, "tiny");
  ASSERT_TRUE(st.ok()) << st.status();
  RecurrentConfig config{.kind = RecurrentKind::kLstm,
                         .prefix = "r",
                         .input_size = 1,
                         .hidden_size = 1,
                         .bidirectional = true};
  auto m = RecurrentModule::Create(config, **st);
  ASSERT_TRUE(m.ok()) << m.status();
  // Two sentences, [0.3, -1.0, 2.0] and [0.7], plus an empty one.
  SequenceBatch batch;
  batch.Reset({3, 1, 0});
  Eigen::MatrixXf x(1, 4);
  x << 0.3f, -1.0f, 2.0f, 0.7f;
  RecurrentScratch scratch;
  Eigen::MatrixXf y, last;
  (*m)->Forward(x, batch, scratch, &y, &last);
  ASSERT_EQ(y.rows(), 2);
  ASSERT_EQ(y.cols(), 4);
  const std::vector<double> fwd = ReferenceLstm({0.3, -1.0, 2.0});
  const std::vector<double> bwd = ReferenceLstm({2.0, -1.0, 0.3});  // reversed
  for (int t = 0; t < 3; ++t) {
    EXPECT_NEAR(y(0, t), fwd[t], 1e-6) << t;
    EXPECT_NEAR(y(1, t), bwd[2 - t], 1e-6) << t;
  }
  // The one-token sentence: both directions see only 0.7.
  EXPECT_NEAR(y(0, 3), ReferenceLstm({0.7})[0], 1e-6);
  EXPECT_NEAR(y(1, 3), ReferenceLstm({0.7})[0], 1e-6);
  // h_n: forward after the last token, backward after the first.
  EXPECT_NEAR(last(0, 0), fwd[2], 1e-6);
  EXPECT_NEAR(last(1, 0), bwd[2], 1e-6);
  EXPECT_EQ(last(0, 2), 0.0f);  // the empty sentence
  EXPECT_EQ(last(1, 2), 0.0f);
}

TEST(RecurrentModuleTest, MismatchedWeightsNameTheTensor) {
  const std::string file = Build(TinyLstm("_l0"));
  auto st = SafeTensors::Parse(file, "w.safetensors");
  ASSERT_TRUE(st.ok());
  RecurrentConfig config{.kind = RecurrentKind::kLstm,
                         .prefix = "r",
                         .input_size = 1,
                         .hidden_size = 2};
  auto m = RecurrentModule::Create(config, **st);
  EXPECT_THAT(m.status().ToString(),
              HasSubstr("w.safetensors: tensor r.weight_ih_l0: expected shape "
                        "[8, 1], got [4, 1]"));
  config.hidden_size = 1;
  config.num_layers = 2;
  m = RecurrentModule::Create(config, **st);
  EXPECT_THAT(m.status().ToString(),
              HasSubstr("no tensor named r.weight_ih_l1"));
  config.num_layers = 1;
  config.prefix = "other";
  m = RecurrentModule::Create(config, **st);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
}

TEST(RecurrentModuleTest, ResidualNeedsMatchingSizes) {
  const std::string file = Build(TinyLstm("_l0"));
  auto st = SafeTensors::Parse(file, "w");
  ASSERT_TRUE(st.ok());
  RecurrentConfig config{.kind = RecurrentKind::kLstm,
                         .prefix = "r",
                         .input_size = 1,
                         .hidden_size = 1,
                         .bidirectional = true,
                         .residual = true};
  EXPECT_THAT(RecurrentModule::Create(config, **st).status().ToString(),
              HasSubstr("residual needs input_size (1) equal to the output "
                        "size (2)"));
}

TEST(RecurrentModuleTest, ConcatInputPutsTheInputBeforeTheStates) {
  const std::string file = Build(TinyLstm("_l0"));
  auto st = SafeTensors::Parse(file, "w");
  ASSERT_TRUE(st.ok());
  RecurrentConfig plain{.kind = RecurrentKind::kLstm,
                        .prefix = "r",
                        .input_size = 1,
                        .hidden_size = 1};
  RecurrentConfig concat = plain;
  concat.concat_input = true;
  auto a = RecurrentModule::Create(plain, **st);
  auto b = RecurrentModule::Create(concat, **st);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->state_size(), 1);
  EXPECT_EQ((*b)->output_size(), 2);
  SequenceBatch batch;
  batch.Reset({3, 1});
  Eigen::MatrixXf x(1, 4);
  x << 0.5f, -1.0f, 2.0f, 0.25f;
  RecurrentScratch scratch;
  Eigen::MatrixXf ya, yb, last_a, last_b;
  (*a)->Forward(x, batch, scratch, &ya, &last_a);
  (*b)->Forward(x, batch, scratch, &yb, &last_b);
  ASSERT_EQ(yb.rows(), 2);
  EXPECT_EQ(yb.row(0), x.row(0));
  EXPECT_EQ(yb.row(1), ya.row(0));
  EXPECT_EQ(last_b, last_a);  // the states, without the input
  concat.residual = true;
  EXPECT_THAT(RecurrentModule::Create(concat, **st).status().ToString(),
              HasSubstr("residual and concat_input exclude each other"));
}

// Weights of one layer with deterministic, varied values.
std::map<std::string, Tensor> Layer(const std::string& prefix, int gates,
                                    int input, int hidden) {
  std::map<std::string, Tensor> t;
  int k = 0;
  auto fill = [&k](std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    Tensor out{shape, {}};
    for (int64_t i = 0; i < n; ++i)
      out.values.push_back(0.4f * std::sin(0.7f * static_cast<float>(++k)));
    return out;
  };
  t[prefix + ".weight_ih_l0"] = fill({gates * hidden, input});
  t[prefix + ".weight_hh_l0"] = fill({gates * hidden, hidden});
  t[prefix + ".bias_ih_l0"] = fill({gates * hidden});
  t[prefix + ".bias_hh_l0"] = fill({gates * hidden});
  return t;
}

// One direction of an LSTM or GRU over xs (columns of `input` floats) in
// double precision, straight from PyTorch's equations, with Layer's weights.
std::vector<std::vector<double>> ReferenceRun(
    const std::map<std::string, Tensor>& t, const std::string& prefix,
    bool lstm, int input, int hidden,
    const std::vector<std::vector<double>>& xs) {
  const int gates = (lstm ? 4 : 3) * hidden;
  const auto& wi = t.at(prefix + ".weight_ih_l0").values;
  const auto& wh = t.at(prefix + ".weight_hh_l0").values;
  const auto& bi = t.at(prefix + ".bias_ih_l0").values;
  const auto& bh = t.at(prefix + ".bias_hh_l0").values;
  std::vector<double> h(hidden, 0.0), c(hidden, 0.0), gi(gates), gh(gates);
  std::vector<std::vector<double>> out;
  for (const std::vector<double>& x : xs) {
    for (int r = 0; r < gates; ++r) {
      gi[r] = bi[r];
      gh[r] = bh[r];
      for (int k = 0; k < input; ++k) gi[r] += wi[r * input + k] * x[k];
      for (int k = 0; k < hidden; ++k) gh[r] += wh[r * hidden + k] * h[k];
    }
    for (int u = 0; u < hidden; ++u) {
      auto g = [&](int block) {
        return gi[block * hidden + u] + gh[block * hidden + u];
      };
      if (lstm) {
        c[u] = Sigmoid(g(1)) * c[u] + Sigmoid(g(0)) * std::tanh(g(2));
        h[u] = Sigmoid(g(3)) * std::tanh(c[u]);
      } else {
        const double r = Sigmoid(g(0)), z = Sigmoid(g(1));
        const double n = std::tanh(gi[2 * hidden + u] + r * gh[2 * hidden + u]);
        h[u] = (1 - z) * n + z * h[u];
      }
    }
    out.push_back(h);
  }
  return out;
}

// Gate matrices whose columns are a multiple of 4 KB (an LSTM of hidden
// 256: 1024 gate rows; a GRU of hidden 1024: 3072) are allocated with
// padded columns; the GEMMs and cells must follow the padded stride.
TEST(RecurrentModuleTest, PaddedGateMatricesFollowTheEquations) {
  for (const bool lstm : {true, false}) {
    const int input = 5, hidden = lstm ? 256 : 1024;
    const auto tensors = Layer("p", lstm ? 4 : 3, input, hidden);
    const std::string file = Build(tensors);
    auto st = SafeTensors::Parse(file, "w");
    ASSERT_TRUE(st.ok()) << st.status();
    auto m = RecurrentModule::Create(
        {.kind = lstm ? RecurrentKind::kLstm : RecurrentKind::kGru,
         .prefix = "p",
         .input_size = input,
         .hidden_size = hidden},
        **st);
    ASSERT_TRUE(m.ok()) << m.status();
    SequenceBatch batch;
    batch.Reset({3, 1});
    Eigen::MatrixXf x(input, 4);
    for (int i = 0; i < x.size(); ++i) x.data()[i] = std::cos(0.9f * i);
    RecurrentScratch scratch;
    Eigen::MatrixXf y;
    (*m)->Forward(x, batch, scratch, &y, nullptr);
    ASSERT_EQ(y.rows(), hidden);
    ASSERT_EQ(y.cols(), 4);
    auto column = [&](int j) {
      return std::vector<double>(x.col(j).data(), x.col(j).data() + input);
    };
    const auto first = ReferenceRun(tensors, "p", lstm, input, hidden,
                                    {column(0), column(1), column(2)});
    const auto second =
        ReferenceRun(tensors, "p", lstm, input, hidden, {column(3)});
    double worst = 0;
    for (int u = 0; u < hidden; ++u) {
      for (int t = 0; t < 3; ++t)
        worst = std::max(worst, std::fabs(y(u, t) - first[t][u]));
      worst = std::max(worst, std::fabs(y(u, 3) - second[0][u]));
    }
    EXPECT_LT(worst, 1e-4) << (lstm ? "lstm" : "gru");
  }
}

// The modules of a tower share one scratch. An LSTM of hidden size 6 and a
// GRU of hidden size 8 have the same number of gate rows (24): the GRU must
// still get a state of its own height (it once ran on the LSTM's 6 rows).
TEST(RecurrentModuleTest, SharedScratchFollowsEachModulesStateSize) {
  auto tensors = Layer("a", 4, 3, 6);
  tensors.merge(Layer("b", 3, 6, 8));
  const std::string file = Build(tensors);
  auto st = SafeTensors::Parse(file, "w");
  ASSERT_TRUE(st.ok()) << st.status();
  auto lstm = RecurrentModule::Create({.kind = RecurrentKind::kLstm,
                                       .prefix = "a",
                                       .input_size = 3,
                                       .hidden_size = 6},
                                      **st);
  auto gru = RecurrentModule::Create({.kind = RecurrentKind::kGru,
                                      .prefix = "b",
                                      .input_size = 6,
                                      .hidden_size = 8},
                                     **st);
  ASSERT_TRUE(lstm.ok()) << lstm.status();
  ASSERT_TRUE(gru.ok()) << gru.status();
  SequenceBatch batch;
  batch.Reset({5, 2, 7});
  Eigen::MatrixXf x(3, 14);
  for (int i = 0; i < x.size(); ++i) x.data()[i] = std::cos(0.3f * i);
  RecurrentScratch shared, fresh;
  Eigen::MatrixXf mid, y, want;
  (*lstm)->Forward(x, batch, shared, &mid, nullptr);
  (*gru)->Forward(mid, batch, shared, &y, nullptr);
  (*gru)->Forward(mid, batch, fresh, &want, nullptr);
  ASSERT_EQ(y.rows(), 8);
  EXPECT_TRUE(y.isApprox(want, 0.0f)) << (y - want).cwiseAbs().maxCoeff();
}

}  // namespace
}  // namespace ctxembed
