// The server end to end under load, failure and disconnects
// (tests/e2e_fixture.h): streams that fail or are cancelled mid-flight,
// Score under overload, model versions swapped under load, HTTP clients
// that vanish mid-request. Run under ASan and TSan by scripts/test.sh.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "tests/e2e_fixture.h"

namespace ctxembed {
namespace {

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

}  // namespace
}  // namespace ctxembed
