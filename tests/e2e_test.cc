// The server end to end, in process: a real gRPC server on 127.0.0.1:0 and
// real clients (generated stubs, a raw generic stub, the health service).
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "ctxembed/v1/embedder.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "model/test_data.h"
#include "server/server.h"

namespace ctxembed {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

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

  HealthCheckResponse::ServingStatus Health(const std::string& service) {
    grpc::ClientContext ctx;
    HealthCheckRequest req;
    req.set_service(service);
    HealthCheckResponse resp;
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

// One stream of the stress test below: `n` requests written without waiting
// (the server keeps up to max_stream_inflight = 8 in flight), request `bad`
// (if < n) invalid, and the client cancelling after `cancel_after` writes
// (if < n). Returns an empty string or what went wrong.
std::string RunStressStream(v1::Embedder::Stub& stub, int n, int bad,
                            int cancel_after) {
  grpc::ClientContext ctx;
  // Far beyond what a stream takes: reaching it is a failure, not a pass.
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub.EmbedStream(&ctx);
  std::thread writer([&] {
    for (int i = 0; i < n; ++i) {
      if (i == cancel_after) {
        ctx.TryCancel();
        return;
      }
      v1::EmbedRequest req;
      req.set_request_id(absl::StrCat(i));
      // Long enough that several are still computing when one fails.
      if (i != bad) req.add_inputs(absl::StrCat("the dog bit the man ", i));
      for (int k = 0; k < i % 3 && i != bad; ++k)
        req.add_inputs("a river bank");
      if (!stream->Write(req)) return;  // the server ended the stream
    }
    stream->WritesDone();
  });
  int next = 0;
  v1::EmbedResponse resp;
  std::string problem;
  while (stream->Read(&resp)) {
    if (resp.request_id() != absl::StrCat(next)) {
      problem = absl::StrCat("response ", resp.request_id(), " came when ",
                             next, " was due");
    }
    ++next;
  }
  writer.join();
  const grpc::Status s = stream->Finish();
  if (!problem.empty()) return problem;
  const bool cancelled = cancel_after < n;
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return "the stream hung until its deadline";
  }
  if (bad < n && !(cancelled && cancel_after <= bad)) {
    // Every answer before the bad request, then its error, unless the
    // client's cancellation won the race.
    if (s.error_code() == grpc::StatusCode::CANCELLED && cancelled) return "";
    if (s.error_code() != grpc::StatusCode::INVALID_ARGUMENT ||
        s.error_message() !=
            absl::StrCat("request_id ", bad, ": request has no inputs") ||
        next != bad) {
      return absl::StrCat("bad request ", bad, ": got ", next,
                          " answers and status ", s.error_code(), " ",
                          s.error_message());
    }
    return "";
  }
  if (cancelled) {
    return s.error_code() == grpc::StatusCode::CANCELLED || s.ok()
               ? ""
               : absl::StrCat("cancelled stream ended with ", s.error_code(),
                              " ", s.error_message());
  }
  return s.ok() && next == n ? ""
                             : absl::StrCat("clean stream: ", next, " of ", n,
                                            " answers, status ", s.error_code(),
                                            " ", s.error_message());
}

// Streams with 8 requests in flight where one fails mid-stream, or the
// client cancels mid-way, from several threads at once: the failure path
// must not touch a finished stream (run under ASan by the test
// command). Iterations: CTXEMBED_STRESS_STREAMS per thread (default 500).
TEST_F(EndToEndTest, StreamsFailingAndCancelledMidFlightStayClean) {
  LoadGoldenModels();
  const char* env = std::getenv("CTXEMBED_STRESS_STREAMS");
  const int streams = env != nullptr ? std::atoi(env) : 500;
  std::atomic<int> problems{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      for (int i = 0; i < streams && problems < 5; ++i) {
        const int n = 4 + static_cast<int>(rng() % 13);
        const int bad = rng() % 3 == 0 ? n : static_cast<int>(rng() % n);
        const int cancel = rng() % 4 == 0 ? static_cast<int>(rng() % n) : n;
        const std::string problem = RunStressStream(*stub_, n, bad, cancel);
        if (!problem.empty()) {
          ADD_FAILURE() << "thread " << t << " stream " << i << ": " << problem;
          ++problems;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(problems, 0);
  // The server still answers.
  v1::EmbedRequest req;
  req.add_inputs("still here");
  v1::EmbedResponse resp;
  EXPECT_TRUE(Embed(req, &resp).ok());
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

// The histogram samples of `name` for `model`: count of observations
// above `threshold`, and in all.
std::pair<uint64_t, uint64_t> HistogramAbove(prometheus::Registry& registry,
                                             const std::string& name,
                                             const std::string& model,
                                             double threshold) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      bool ours = false;
      for (const auto& label : metric.label) {
        ours |= label.name == "model" && label.value == model;
      }
      if (!ours) continue;
      uint64_t at_most = 0;
      for (const auto& bucket : metric.histogram.bucket) {
        if (bucket.upper_bound <= threshold) {
          at_most = std::max<uint64_t>(at_most, bucket.cumulative_count);
        }
      }
      return {metric.histogram.sample_count - at_most,
              metric.histogram.sample_count};
    }
  }
  return {0, 0};
}

// Score goes through the model's batcher like Embed: under 64 concurrent
// callers pairs of different calls share batches, and a full queue refuses
// calls with RESOURCE_EXHAUSTED while the others are answered.
TEST_F(EndToEndTest, ScoreIsBatchedAndRefusedUnderOverloadLikeEmbed) {
  EmbeddingServer::Options options = DefaultOptions();
  options.num_batch_workers = 1;
  options.batch.max_queue_sentences = 16;
  StartServer(options);
  // A dual encoder: each call is two jobs (a through enc0, b through enc1),
  // so a refusal of one must end the call with the refusal, not with the
  // cancellation of its sibling.
  ASSERT_TRUE(
      server_->LoadModel(testing::GoldenDir() + "/torch/dual_o2v").ok());
  server_->SetServing(true);
  v1::ScoreResponse reference;
  std::string text;
  for (int w = 0; w < 60; ++w) text += "w" + std::to_string(w % 40) + " ";
  {
    v1::ScoreRequest req;
    req.add_pairs()->set_a(text);
    req.mutable_pairs(0)->set_b(text);
    req.set_truncate(true);
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Score(&ctx, req, &reference).ok());
  }
  std::atomic<int> ok{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 64; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        v1::ScoreRequest req;
        req.add_pairs()->set_a(text);
        req.mutable_pairs(0)->set_b(text);
        req.set_truncate(true);
        v1::ScoreResponse resp;
        grpc::ClientContext ctx;
        const grpc::Status s = stub_->Score(&ctx, req, &resp);
        if (s.ok() && resp.scores_size() == 1 &&
            std::abs(resp.scores(0) - reference.scores(0)) < 1e-5f) {
          ++ok;
        } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++refused;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(other, 0) << "a call ended with neither OK nor its refusal";
  EXPECT_GT(ok, 0);
  EXPECT_GT(refused, 0) << "16 queued sentences cannot hold 64 callers' pairs";
  // One call is one job of 1 sentence per tower: batches of more held
  // several calls.
  const auto [merged, batches] =
      HistogramAbove(server_->registry(), "ctxembed_batch_size", "dual_o2v", 1);
  EXPECT_GT(batches, 0u);
  EXPECT_GT(merged, 0u) << "no batch held more than one Score call";
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

// Copies golden model `src` into `dst`, naming the model `name`.
void CopyModel(const std::string& src, const std::filesystem::path& dst,
               const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path staging = dst.string() + ".partial";
  fs::copy(testing::GoldenDir() + "/models/" + src, staging);
  std::string config;
  {
    std::ifstream in(staging / "config.json");
    config.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string from = "\"name\": \"" + src + "\"";
  config.replace(config.find(from), from.size(), "\"name\": \"" + name + "\"");
  std::ofstream(staging / "config.json") << config;
  fs::rename(staging, dst);
}

// Versions swapped (8 and 12 dimensions in turn) while clients call every
// batched method and cancel some calls mid-flight: every call ends OK (with
// the dimension of the version it names) or CANCELLED when its client
// cancelled, and every replaced version is released. Run under ASan: a
// batcher released while a call still holds it would be a use after free.
TEST_F(EndToEndTest, VersionsSwapUnderLoadWithoutFailedCalls) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() /
                       ("ctxembed_e2e_versions_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto dim_of = [](int64_t version) { return version % 2 == 1 ? 8 : 12; };
  auto src_of = [](int64_t version) {
    return version % 2 == 1 ? "sg_d8" : "cbow_d12";
  };
  CopyModel(src_of(1), dir / "1", "m");
  auto options = DefaultOptions();
  options.model_poll_interval_ms = 0;  // rescans only when the test says
  StartServer(options);
  ASSERT_TRUE(server_->LoadModel(dir.string()).ok());
  server_->SetServing(true);

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, cancelled{0};
  std::mutex mu;
  std::vector<std::string> failures;
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    failures.push_back(what);
  };
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(c);
      for (int i = 0; i < 100000 && !stop.load(); ++i) {
        grpc::ClientContext ctx;
        const bool cancel = rng() % 8 == 0;
        std::thread canceller;
        if (cancel) canceller = std::thread([&ctx] { ctx.TryCancel(); });
        grpc::Status s;
        int64_t version = 0;
        int dim = 0;
        if (c % 3 == 0) {
          v1::EmbedRequest req;
          req.add_inputs("the dog bit the man");
          req.add_inputs("a b c");
          v1::EmbedResponse resp;
          s = stub_->Embed(&ctx, req, &resp);
          version = resp.model_version();
          if (s.ok()) dim = resp.embeddings(1).values_size();
        } else if (c % 3 == 1) {
          v1::ScoreRequest req;
          auto* pair = req.add_pairs();
          pair->set_a("the dog");
          pair->set_b("the man");
          v1::ScoreResponse resp;
          s = stub_->Score(&ctx, req, &resp);
          version = resp.model_version();
          dim = s.ok() ? dim_of(version) : 0;
        } else {
          auto stream = stub_->EmbedStream(&ctx);
          v1::EmbedRequest req;
          req.add_inputs("the cat");
          for (int k = 0; k < 3; ++k) stream->Write(req);
          stream->WritesDone();
          v1::EmbedResponse resp;
          while (stream->Read(&resp)) {
            if (resp.embeddings(0).values_size() !=
                dim_of(resp.model_version()))
              fail("stream: wrong dimension");
          }
          s = stream->Finish();
          version = resp.model_version();
          dim = s.ok() ? dim_of(version) : 0;
        }
        if (canceller.joinable()) canceller.join();
        if (s.ok()) {
          ++ok;
          if (dim != dim_of(version)) {
            fail("version " + std::to_string(version) + ": dimension " +
                 std::to_string(dim));
          }
        } else if (cancel && s.error_code() == grpc::StatusCode::CANCELLED) {
          ++cancelled;
        } else {
          fail(std::to_string(s.error_code()) + ": " + s.error_message());
        }
      }
    });
  }
  for (int v = 2; v <= 11; ++v) {
    CopyModel(src_of(v), dir / std::to_string(v), "m");
    if (v % 3 == 0) fs::remove_all(dir / std::to_string(v - 2));
    server_->ReloadNow();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_THAT(failures, ::testing::IsEmpty());
  EXPECT_GT(ok.load(), 0);
  std::printf("ok %d, cancelled by the client %d\n", ok.load(),
              cancelled.load());
  // With the calls done, a rescan releases every replaced version.
  server_->ReloadNow();
  v1::ListModelsResponse models;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListModels(&ctx, v1::ListModelsRequest(), &models).ok());
  }
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).version(), 11);
  EXPECT_EQ(models.models(0).dimension(), 8);
  server_->Shutdown();
  fs::remove_all(dir);
}

// One HTTP exchange over a fresh connection: sends `request`, then reads
// the answer until the server closes (Connection: close) unless `hang_up`,
// which closes right after sending. Returns what was read.
std::string HttpExchange(int port, const std::string& request, bool hang_up) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    size_t sent = 0;
    while (sent < request.size()) {
      const ssize_t n =
          send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    char buf[4096];
    ssize_t n;
    while (!hang_up && (n = recv(fd, buf, sizeof(buf), 0)) > 0) {
      reply.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return reply;
}

// HTTP clients that hang up while their request waits or runs, or in the
// middle of its body, beside clients that wait for their answers: every
// patient client gets a 200, and the server shuts down cleanly. Run under
// ASan: a connection freed while its job still runs would be a use after
// free.
TEST_F(EndToEndTest, HttpClientsThatVanishMidRequestLeaveTheServerClean) {
  auto options = DefaultOptions();
  options.http_address = "127.0.0.1:0";
  options.max_inputs_per_request = 64;
  StartServer(options);
  LoadGoldenModels();
  const int port = server_->http_port();
  ASSERT_GT(port, 0);
  std::string body = R"({"inputs": [)";
  for (int i = 0; i < 48; ++i) {
    body += std::string(i ? "," : "") + R"("the dog bit the man again")";
  }
  body += "]}";
  const std::string request = absl::StrCat(
      "POST /embed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
      "Content-Type: application/json\r\nContent-Length: ",
      body.size(), "\r\n\r\n", body);
  std::atomic<int> answered{0}, wrong{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(c);
      for (int i = 0; i < 150; ++i) {
        switch (rng() % 3) {
          case 0:  // hangs up once the request is sent
            HttpExchange(port, request, /*hang_up=*/true);
            break;
          case 1:  // hangs up half way through the body
            HttpExchange(port, request.substr(0, request.size() / 2), true);
            break;
          default: {
            const std::string reply = HttpExchange(port, request, false);
            if (reply.rfind("HTTP/1.1 200", 0) == 0) {
              ++answered;
            } else {
              ++wrong;
            }
          }
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(answered.load(), 0);
  server_->Shutdown();
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
