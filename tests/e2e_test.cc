// The server end to end, in process (tests/e2e_fixture.h): health, every
// RPC's answers and errors, concurrent clients, what Start and LoadModel
// refuse (busy ports, a second model of one name), shutdown, and the
// threads a model costs. e2e_load_test.cc has the same server under load,
// failure and disconnects.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/e2e_fixture.h"

namespace ctxembed {
namespace {

using grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

TEST_F(EndToEndTest, HealthFollowsTheModelLifecycle) {
  EXPECT_EQ(Health(""), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health("ctxembed.v1.Embedder"), HealthCheckResponse::NOT_SERVING);
  v1::EmbedRequest req;
  req.add_inputs("too early");
  v1::EmbedResponse resp;
  EXPECT_EQ(Embed(req, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
  LoadGoldenModels();
  EXPECT_EQ(Health(""), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health("ctxembed.v1.Embedder"), HealthCheckResponse::SERVING);
  EXPECT_TRUE(Embed(req, &resp).ok());
}

TEST_F(EndToEndTest, EmbedMatchesTheModel) {
  LoadGoldenModels();
  v1::EmbedRequest req;
  req.add_inputs("the dog bit the man");
  req.add_inputs("東京 café");
  req.set_model("cbow_d12");
  v1::EmbedResponse resp;
  ASSERT_TRUE(Embed(req, &resp).ok());
  EXPECT_EQ(resp.model(), "cbow_d12");
  auto model = Model::Load(testing::GoldenDir() + "/models/cbow_d12");
  ASSERT_TRUE(model.ok());
  for (int i = 0; i < 2; ++i) {
    std::vector<TokenList> sentences(1);
    (*model)->tokenizer().Tokenize(req.inputs(i), &sentences[0]);
    TowerScratch scratch;
    Eigen::MatrixXf want;
    (*model)->tower(0).Embed(sentences, Pooling::kFastText, scratch, &want);
    ASSERT_EQ(resp.embeddings(i).values_size(), 12);
    for (int j = 0; j < 12; ++j) {
      EXPECT_EQ(resp.embeddings(i).values(j), want(j, 0)) << i << "," << j;
    }
  }
}

TEST_F(EndToEndTest, BadRequestsGetClearErrorsAndTheServerGoesOn) {
  LoadGoldenModels();
  struct Case {
    v1::EmbedRequest req;
    grpc::StatusCode code;
    const char* message;
  };
  std::vector<Case> cases(4);
  cases[0] = {{}, grpc::StatusCode::INVALID_ARGUMENT, "request has no inputs"};
  for (int i = 0; i < 9; ++i) cases[1].req.add_inputs("x");
  cases[1].code = grpc::StatusCode::INVALID_ARGUMENT;
  cases[1].message = "request has 9 inputs; max_inputs_per_request is 8";
  cases[2].req.add_inputs("a");
  cases[2].req.set_model("missing");
  cases[2].code = grpc::StatusCode::NOT_FOUND;
  cases[2].message = "model \"missing\" is not loaded; loaded: sg_d8, cbow_d12";
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "word ";
  cases[3].req.add_inputs("short");
  cases[3].req.add_inputs(long_text);
  cases[3].code = grpc::StatusCode::INVALID_ARGUMENT;
  cases[3].message =
      "input 1 has 100 tokens; max_tokens of model \"sg_d8\" is 64";
  for (const Case& c : cases) {
    v1::EmbedResponse resp;
    grpc::Status s = Embed(c.req, &resp);
    EXPECT_EQ(s.error_code(), c.code) << c.message;
    EXPECT_THAT(s.error_message(), HasSubstr(c.message));
  }
  v1::EmbedRequest ok;
  ok.add_inputs("still serving");
  v1::EmbedResponse resp;
  EXPECT_TRUE(Embed(ok, &resp).ok());
}

TEST_F(EndToEndTest, InvalidUtf8NamesTheInput) {
  LoadGoldenModels();
  // Raw bytes, as a client that skips UTF-8 checks would send them:
  // inputs[0] = "fine", inputs[1] = "caf\xC3" (cut in the middle of é).
  const std::string body = std::string(
      "\x0a\x04"
      "fine"
      "\x0a\x04"
      "caf\xC3",
      12);
  grpc::GenericStub generic(channel_);
  grpc::ClientContext ctx;
  grpc::Slice slice(body);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, "/ctxembed.v1.Embedder/Embed", grpc::StubOptions(),
                    &request, &response, [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = s;
                      done = true;
                      cv.notify_one();
                    });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "input 1 is not valid UTF-8 (byte 3)");
}

TEST_F(EndToEndTest, EmbedTokensScoreTokenizeListModels) {
  LoadGoldenModels();
  v1::EmbedRequest req;
  req.add_inputs("the dog");
  v1::EmbedTokensResponse tokens;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->EmbedTokens(&ctx, req, &tokens).ok());
  }
  ASSERT_EQ(tokens.results(0).tokens_size(), 2);
  EXPECT_EQ(tokens.results(0).vectors(1).values_size(), 8);
  v1::ScoreRequest score_req;
  score_req.add_pairs()->set_a("dog");
  score_req.mutable_pairs(0)->set_b("dog");
  v1::ScoreResponse score;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Score(&ctx, score_req, &score).ok());
  }
  EXPECT_NEAR(score.scores(0), 1.0f, 1e-6);
  v1::ListModelsResponse models;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListModels(&ctx, {}, &models).ok());
  }
  ASSERT_EQ(models.models_size(), 2);
  EXPECT_TRUE(models.models(0).is_default());
  EXPECT_EQ(models.models(1).name(), "cbow_d12");
  EXPECT_EQ(models.models(1).dimension(), 12);
}

TEST_F(EndToEndTest, EmbedStreamAnswersInOrderAndEchoesRequestIds) {
  LoadGoldenModels();
  grpc::ClientContext ctx;
  auto stream = stub_->EmbedStream(&ctx);
  for (int i = 0; i < 5; ++i) {
    v1::EmbedRequest req;
    req.add_inputs(absl::StrCat("sentence number ", i));
    req.set_request_id(absl::StrCat("r", i));
    ASSERT_TRUE(stream->Write(req));
    v1::EmbedResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(resp.request_id(), absl::StrCat("r", i));
    EXPECT_EQ(resp.embeddings_size(), 1);
  }
  v1::EmbedRequest bad;
  bad.set_request_id("bad-one");
  ASSERT_TRUE(stream->Write(bad));
  v1::EmbedResponse resp;
  EXPECT_FALSE(stream->Read(&resp));
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "request_id bad-one: request has no inputs");
}

TEST_F(EndToEndTest, ConcurrentClientsGetIdenticalAnswers) {
  LoadGoldenModels();
  v1::EmbedRequest req;
  req.add_inputs("a kind of plant that grows in water");
  v1::EmbedResponse reference;
  ASSERT_TRUE(Embed(req, &reference).ok());
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        v1::EmbedResponse resp;
        grpc::ClientContext ctx;
        if (!stub_->Embed(&ctx, req, &resp).ok()) {
          ++failures;
        } else if (resp.SerializeAsString() != reference.SerializeAsString()) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(mismatches, 0);
}

// Two --model_dir entries may not serve models of one name: the second is
// refused, naming the first, and the first goes on serving.
TEST_F(EndToEndTest, ASecondModelOfTheSameNameIsRefused) {
  const std::string dir = testing::GoldenDir() + "/models/sg_d8";
  ASSERT_TRUE(server_->LoadModel(dir).ok());
  const absl::Status again = server_->LoadModel(dir);
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(again.message(),
            "a model named \"sg_d8\" is loaded (from " + dir + ")");
  server_->SetServing(true);
  v1::EmbedRequest req;
  req.set_model("sg_d8");
  req.add_inputs("still served");
  v1::EmbedResponse resp;
  const grpc::Status s = Embed(req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.embeddings_size(), 1);
}

// A port of 127.0.0.1 held by a listening socket of this process (without
// SO_REUSEPORT, so gRPC cannot share it); closed on destruction.
class BusyPort {
 public:
  BusyPort() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
        listen(fd_, 1) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~BusyPort() { close(fd_); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int port() const { return port_; }

 private:
  const int fd_;
  int port_ = 0;
};

// Each port a server cannot listen on fails Start with UNAVAILABLE naming
// its address, after the ports that did open are closed again.
TEST_F(EndToEndTest, BusyPortsFailStartNamingTheirAddress) {
  const BusyPort busy;
  ASSERT_GT(busy.port(), 0);
  struct Case {
    std::string EmbeddingServer::Options::*field;
    std::string message;
  };
  for (const Case& c :
       {Case{&EmbeddingServer::Options::grpc_address, "cannot serve gRPC on "},
        Case{&EmbeddingServer::Options::health_address,
             "cannot serve health checks on "},
        Case{&EmbeddingServer::Options::http_address,
             "cannot serve HTTP on "}}) {
    EmbeddingServer::Options options = DefaultOptions();
    options.http_address = "127.0.0.1:0";
    options.*c.field = busy.address();
    const auto started = EmbeddingServer::Start(options);
    ASSERT_FALSE(started.ok()) << c.message;
    EXPECT_EQ(started.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(started.status().message(),
                HasSubstr(c.message + busy.address()));
  }
  // The fixture's server goes on.
  EXPECT_EQ(Health(""), HealthCheckResponse::NOT_SERVING);
}

TEST_F(EndToEndTest, ShutdownRefusesNewCalls) {
  LoadGoldenModels();
  server_->Shutdown();
  v1::EmbedRequest req;
  req.add_inputs("after shutdown");
  v1::EmbedResponse resp;
  grpc::ClientContext ctx;
  // A refusal, not a call that waited out its deadline.
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  const grpc::Status s = stub_->Embed(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

// Threads of this process that carry its name: the ones ctxembed and the
// test start (gRPC names its own threads, and starts and stops them as it
// likes).
int ThreadCount() {
  auto comm = [](const std::filesystem::path& p) {
    std::ifstream f(p / "comm");
    std::string name;
    std::getline(f, name);
    return name;
  };
  const std::string self = comm("/proc/self");
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    n += comm(e.path()) == self ? 1 : 0;
  }
  return n;
}

// Every model's batcher shares the server's scheduler: loading more models
// starts no threads. (The first bidirectional model starts the one
// process-wide helper that runs the second direction: load one first.)
TEST_F(EndToEndTest, MoreModelsStartNoMoreThreads) {
  const absl::Status first =
      server_->LoadModel(testing::GoldenDir() + "/torch/lstm_bi_2l_last");
  ASSERT_TRUE(first.ok()) << first;
  const int one_model = ThreadCount();
  for (const char* m :
       {"/models/sg_d8", "/models/cbow_d12", "/torch/bigru_2l_odd"}) {
    const absl::Status loaded = server_->LoadModel(testing::GoldenDir() + m);
    ASSERT_TRUE(loaded.ok()) << m << ": " << loaded;
  }
  EXPECT_EQ(ThreadCount(), one_model);
}

}  // namespace
}  // namespace ctxembed
