#include "server/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "absl/strings/str_cat.h"
#include "model/cpu_info.h"
#include "model/kernels.h"

namespace ctxembed {
namespace {

using ::testing::HasSubstr;

std::string Exposition(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

TEST(ServerMetricsTest, ExportsTheContractNames) {
  prometheus::Registry registry;
  ServerMetrics metrics(&registry);
  metrics.RecordModelLoaded("m", "bag_of_vectors", 8, 0.25);
  metrics.RecordRequest(Method::kEmbed, absl::StatusCode::kOk, 0.001);
  metrics.RecordRequest(Method::kEmbed, absl::StatusCode::kInvalidArgument,
                        0.0001);
  metrics.RecordInference("m", 0.0005, 7);
  metrics.AddInflight(2);
  metrics.AddInflight(-1);
  const std::string text = Exposition(registry);
  EXPECT_THAT(
      text,
      HasSubstr("ctxembed_requests_total{code=\"OK\",method=\"Embed\"} 1"));
  EXPECT_THAT(text,
              HasSubstr("ctxembed_requests_total{code=\"INVALID_ARGUMENT\""
                        ",method=\"Embed\"} 1"));
  EXPECT_THAT(text, HasSubstr("ctxembed_request_duration_seconds_bucket{"
                              "method=\"Embed\",le=\"5e-05\"} 0"));
  EXPECT_THAT(text, HasSubstr("ctxembed_request_duration_seconds_bucket{"
                              "method=\"Embed\",le=\"0.00025\"} 1"));
  EXPECT_THAT(text, HasSubstr("ctxembed_request_duration_seconds_bucket{"
                              "method=\"Embed\",le=\"10\"} 2"));
  EXPECT_THAT(text, HasSubstr("ctxembed_inference_duration_seconds_count{"
                              "model=\"m\"} 1"));
  EXPECT_THAT(text, HasSubstr(absl::StrCat(
                        "ctxembed_build_info{build_isa=\"", BuildIsa(),
                        "\",cpu_isa=\"", CpuIsa(), "\",isa=\"",
                        KernelsLevelName(DefaultKernels()), "\"} 1")));
  EXPECT_THAT(text, HasSubstr("ctxembed_input_tokens_total{model=\"m\"} 7"));
  EXPECT_THAT(text, HasSubstr("ctxembed_inflight_requests 1"));
  EXPECT_THAT(text, HasSubstr("ctxembed_model_info{architecture=\"bag_of_"
                              "vectors\",dim=\"8\",model=\"m\"} 1"));
  EXPECT_THAT(text, HasSubstr("ctxembed_model_load_seconds{model=\"m\"} 0.25"));
}

}  // namespace
}  // namespace ctxembed
