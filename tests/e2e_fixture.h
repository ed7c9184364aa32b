// The fixture of the end-to-end tests (e2e_test.cc, e2e_load_test.cc): a
// real gRPC server on 127.0.0.1:0, in process, and its clients (generated
// stubs and the health service).
#ifndef CTXEMBED_TESTS_E2E_FIXTURE_H_
#define CTXEMBED_TESTS_E2E_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "ctxembed/v1/embedder.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "model/test_data.h"
#include "server/server.h"

namespace ctxembed {

class EndToEndTest : public ::testing::Test {
 protected:
  static EmbeddingServer::Options DefaultOptions() {
    EmbeddingServer::Options options;
    options.grpc_address = "127.0.0.1:0";
    options.metrics_address = "";  // the Exposer is tested with the binary
    options.max_inputs_per_request = 8;
    return options;
  }

  void SetUp() override { StartServer(DefaultOptions()); }

  void StartServer(const EmbeddingServer::Options& options) {
    server_.reset();
    auto server = EmbeddingServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                            grpc::InsecureChannelCredentials());
    stub_ = v1::Embedder::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
  }

  void LoadGoldenModels() {
    for (const char* m : {"sg_d8", "cbow_d12"}) {
      const absl::Status loaded =
          server_->LoadModel(testing::GoldenDir() + "/models/" + m);
      ASSERT_TRUE(loaded.ok()) << loaded;
    }
    server_->SetServing(true);
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus Health(
      const std::string& service) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health_->Check(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.status();
  }

  grpc::Status Embed(const v1::EmbedRequest& req, v1::EmbedResponse* resp) {
    grpc::ClientContext ctx;
    return stub_->Embed(&ctx, req, resp);
  }

  std::unique_ptr<EmbeddingServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Embedder::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_TESTS_E2E_FIXTURE_H_
