// loadgen: drives a ctxembed server on this machine and reports latency,
// throughput and status codes.
//
//   loadgen --target=127.0.0.1:50051 --mode=closed --concurrency=64
//       --duration_s=10 --sentences=FILE [--max_per_request=1]
//   loadgen --mode=open --rate=2000 ...   (Poisson arrivals)
//   loadgen --rpc=stream ...   (closed loop over EmbedStream)
//
// Closed loop: `concurrency` callers, each sending its next request when the
// last one returns. Open loop: requests are sent at Poisson arrival times at
// `rate` per second whatever the server does, and latency is measured from
// the scheduled send time, so queueing at the client is counted rather than
// hidden (coordinated omission). With --rpc=stream each closed-loop caller
// holds one EmbedStream and sends its next request on it when the last
// answer arrives (one call set up per caller, not per request). Each request
// carries 1..max_per_request sentences drawn at random from the file (one per
// line). Talks to loopback addresses only and stops by itself after
// --duration_s. Prints a JSON report (also to --out_json) and a markdown row
// (--out_md).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "ctxembed/v1/embedder.grpc.pb.h"
#include "inference/json_writer.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "server (loopback only)");
ABSL_FLAG(std::string, mode, "closed", "closed or open");
ABSL_FLAG(std::string, rpc, "unary",
          "unary (an Embed call per request) or stream (closed loop only: "
          "each caller's requests on its own EmbedStream)");
ABSL_FLAG(int, concurrency, 64, "closed loop: concurrent callers");
ABSL_FLAG(double, rate, 1000, "open loop: requests per second");
ABSL_FLAG(double, duration_s, 10, "how long to send");
ABSL_FLAG(double, warmup_s, 1, "sent first and not counted");
ABSL_FLAG(std::string, sentences, "", "text file, one sentence per line");
ABSL_FLAG(int, max_per_request, 1, "sentences per request: 1..this");
ABSL_FLAG(int, deadline_ms, 0, "per-request deadline; 0: none");
ABSL_FLAG(std::string, model, "", "model name (empty: default)");
ABSL_FLAG(int, max_outstanding, 20000, "open loop: cap on requests in flight");
ABSL_FLAG(bool, health_check, false,
          "client-side health checking (round_robin over the target's "
          "addresses, leaving one whose health is NOT_SERVING)");
ABSL_FLAG(std::string, http_target, "",
          "closed loop over HTTP instead: POST /v1/embeddings to this "
          "host:port (loopback only), one keep-alive connection per caller");
ABSL_FLAG(std::string, label, "", "name of this run in the reports");
ABSL_FLAG(std::string, out_json, "", "append the JSON report to this file");
ABSL_FLAG(std::string, out_md, "", "append a markdown table row to this file");

namespace {

using Clock = std::chrono::steady_clock;
using ctxembed::v1::EmbedRequest;
using ctxembed::v1::EmbedResponse;

bool IsLoopback(const std::string& target) {
  for (const char* prefix :
       {"127.", "localhost:", "[::1]:", "ipv4:127.", "ipv6:[::1]:"}) {
    if (target.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

// Results of all calls, guarded by one mutex (calls finish on gRPC threads).
struct Recorder {
  std::mutex mu;
  std::vector<double> ok_latency_ms;     // from the scheduled send time
  std::vector<double> error_latency_ms;  // from the scheduled send time
  std::vector<double> error_sent_ms;     // from the actual send: server speed
  std::map<std::string, int64_t> codes;
  int64_t ok_sentences = 0;
  int64_t dropped = 0;  // open loop: not sent, max_outstanding reached

  void Add(const grpc::Status& s, double ms, double sent_ms, int sentences) {
    std::lock_guard<std::mutex> lock(mu);
    static const char* kNames[] = {"OK",
                                   "CANCELLED",
                                   "UNKNOWN",
                                   "INVALID_ARGUMENT",
                                   "DEADLINE_EXCEEDED",
                                   "NOT_FOUND",
                                   "ALREADY_EXISTS",
                                   "PERMISSION_DENIED",
                                   "RESOURCE_EXHAUSTED",
                                   "FAILED_PRECONDITION",
                                   "ABORTED",
                                   "OUT_OF_RANGE",
                                   "UNIMPLEMENTED",
                                   "INTERNAL",
                                   "UNAVAILABLE",
                                   "DATA_LOSS",
                                   "UNAUTHENTICATED"};
    ++codes[kNames[std::min<int>(s.error_code(), 16)]];
    if (s.ok()) {
      ok_latency_ms.push_back(ms);
      ok_sentences += sentences;
    } else {
      error_latency_ms.push_back(ms);
      error_sent_ms.push_back(sent_ms);
    }
  }
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

class Load {
 public:
  Load(std::vector<std::string> texts)
      : texts_(std::move(texts)),
        stub_(ctxembed::v1::Embedder::NewStub(MakeChannel())) {}

  static std::shared_ptr<grpc::Channel> MakeChannel() {
    grpc::ChannelArguments args;
    if (absl::GetFlag(FLAGS_health_check)) {
      args.SetServiceConfigJSON(
          R"({"loadBalancingConfig": [{"round_robin": {}}],)"
          R"( "healthCheckConfig": {"serviceName": "ctxembed.v1.Embedder"}})");
    }
    return grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target),
                                     grpc::InsecureChannelCredentials(), args);
  }

  // Sends one request; `done` runs when it returns. `scheduled` is the time
  // latency is measured from. `counted`: outside the warm-up.
  void Send(std::mt19937& rng, Clock::time_point scheduled, bool counted,
            std::function<void()> done) {
    struct Call {
      grpc::ClientContext ctx;
      EmbedRequest req;
      EmbedResponse resp;
    };
    auto* call = new Call;
    const int k = FillRequest(rng, &call->req);
    if (const int ms = absl::GetFlag(FLAGS_deadline_ms); ms > 0) {
      call->ctx.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(ms));
    }
    outstanding_++;
    const auto sent = Clock::now();
    stub_->async()->Embed(
        &call->ctx, &call->req, &call->resp,
        [this, call, scheduled, sent, counted, k,
         done = std::move(done)](grpc::Status s) {
          const auto now = Clock::now();
          const double ms =
              std::chrono::duration<double, std::milli>(now - scheduled)
                  .count();
          const double sent_ms =
              std::chrono::duration<double, std::milli>(now - sent).count();
          if (counted) recorder.Add(s, ms, sent_ms, k);
          delete call;
          outstanding_--;
          done();
        });
  }

  // A request of 1..max_per_request random sentences; returns how many.
  int FillRequest(std::mt19937& rng, EmbedRequest* req) const {
    req->Clear();
    const int k =
        1 + static_cast<int>(rng() % absl::GetFlag(FLAGS_max_per_request));
    for (int i = 0; i < k; ++i) req->add_inputs(texts_[rng() % texts_.size()]);
    req->set_model(absl::GetFlag(FLAGS_model));
    req->set_truncate(true);
    return k;
  }

  ctxembed::v1::Embedder::Stub& stub() { return *stub_; }
  int outstanding() const { return outstanding_; }
  Recorder recorder;

 private:
  std::vector<std::string> texts_;
  std::unique_ptr<ctxembed::v1::Embedder::Stub> stub_;
  std::atomic<int> outstanding_{0};
};

void RunClosed(Load& load, Clock::time_point start, Clock::time_point warm_end,
               Clock::time_point end) {
  const int n = absl::GetFlag(FLAGS_concurrency);
  std::atomic<int> active{n};
  absl::Notification all_done;
  std::vector<std::mt19937> rngs;
  for (int i = 0; i < n; ++i) rngs.emplace_back(1000 + i);
  std::function<void(int)> next = [&](int i) {
    const auto now = Clock::now();
    if (now >= end) {
      if (--active == 0) all_done.Notify();
      return;
    }
    load.Send(rngs[i], now, now >= warm_end, [&, i] { next(i); });
  };
  for (int i = 0; i < n; ++i) next(i);
  all_done.WaitForNotification();
}

// One closed-loop caller over EmbedStream: writes a request, waits for its
// answer, writes the next, until `end`; then closes its side and waits for
// the call's status. A failed call fails the request in flight (recorded
// with the call's code), and before `end` a new caller (a reactor serves one
// call) goes on with the same random sequence on a new stream. Deletes
// itself when its call has ended; the last caller of the chain runs `done`.
class StreamCaller
    : public grpc::ClientBidiReactor<EmbedRequest, EmbedResponse> {
 public:
  StreamCaller(Load& load, std::mt19937 rng, Clock::time_point warm_end,
               Clock::time_point end, std::function<void()> done)
      : load_(load),
        rng_(rng),
        warm_end_(warm_end),
        end_(end),
        done_(std::move(done)) {}

  void Start() {
    if (const int ms = absl::GetFlag(FLAGS_deadline_ms); ms > 0) {
      // A stream lives for the whole run: the deadline covers that.
      ctx_.set_deadline(std::chrono::system_clock::now() +
                        (end_ - Clock::now()) + std::chrono::milliseconds(ms));
    }
    load_.stub().async()->EmbedStream(&ctx_, this);
    WriteNext();
    StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (ok) Settle();  // else the call has failed: OnDone follows
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the call ended: OnDone follows
    const auto now = Clock::now();
    if (counted_) {
      const double ms =
          std::chrono::duration<double, std::milli>(now - sent_).count();
      load_.recorder.Add(grpc::Status::OK, ms, ms, sentences_);
    }
    in_flight_ = false;
    Settle();
  }

  void OnDone(const grpc::Status& s) override {
    if (in_flight_ && counted_) {
      const double ms =
          std::chrono::duration<double, std::milli>(Clock::now() - sent_)
              .count();
      load_.recorder.Add(s.ok() ? grpc::Status(grpc::StatusCode::UNKNOWN,
                                               "stream ended unanswered")
                                : s,
                         ms, ms, sentences_);
    }
    if (Clock::now() < end_ && !s.ok()) {
      auto* next =
          new StreamCaller(load_, rng_, warm_end_, end_, std::move(done_));
      delete this;
      next->Start();
      return;
    }
    auto done = std::move(done_);
    delete this;
    done();
  }

 private:
  // The answer and the write's completion may come in either order; the
  // next request goes out once both have (one write at a time).
  void Settle() {
    if (++settled_ < 2) return;
    settled_ = 0;
    if (Clock::now() >= end_) {
      StartWritesDone();
    } else {
      WriteNext();
    }
  }

  void WriteNext() {
    sentences_ = load_.FillRequest(rng_, &req_);
    sent_ = Clock::now();
    counted_ = sent_ >= warm_end_;
    in_flight_ = true;
    settled_ = 0;
    StartRead(&resp_);
    StartWrite(&req_);
  }

  Load& load_;
  std::mt19937 rng_;
  const Clock::time_point warm_end_, end_;
  std::function<void()> done_;
  grpc::ClientContext ctx_;
  EmbedRequest req_;
  EmbedResponse resp_;
  Clock::time_point sent_;
  int sentences_ = 0;
  bool counted_ = false;
  std::atomic<bool> in_flight_{false};
  std::atomic<int> settled_{0};
};

void RunClosedStreams(Load& load, Clock::time_point warm_end,
                      Clock::time_point end) {
  const int n = absl::GetFlag(FLAGS_concurrency);
  std::atomic<int> active{n};
  absl::Notification all_done;
  for (int i = 0; i < n; ++i) {
    (new StreamCaller(load, std::mt19937(1000 + i), warm_end, end, [&] {
      if (--active == 0) all_done.Notify();
    }))->Start();
  }
  all_done.WaitForNotification();
}

// Closed loop over HTTP/1.1: each caller a thread with one keep-alive
// connection, POST /v1/embeddings with the same request mix as over gRPC.
// The answer is read whole (not parsed), as a client's HTTP library would.
void RunClosedHttp(Load& load, const std::vector<std::string>& texts,
                   Clock::time_point warm_end, Clock::time_point end) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  namespace net = boost::asio;
  const std::string target = absl::GetFlag(FLAGS_http_target);
  const size_t colon = target.rfind(':');
  const std::string host = target.substr(0, colon);
  const std::string port = target.substr(colon + 1);
  const int n = absl::GetFlag(FLAGS_concurrency);
  std::vector<std::thread> callers;
  for (int c = 0; c < n; ++c) {
    callers.emplace_back([&, c] {
      std::mt19937 rng(1000 + c);
      net::io_context ioc;
      net::ip::tcp::resolver resolver(ioc);
      std::optional<beast::tcp_stream> stream;
      beast::flat_buffer buffer;
      while (Clock::now() < end) {
        beast::error_code ec;
        if (!stream) {
          stream.emplace(ioc);
          stream->connect(resolver.resolve(host, port), ec);
          if (ec) {
            stream.reset();
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            continue;
          }
        }
        const int k =
            1 + static_cast<int>(rng() % absl::GetFlag(FLAGS_max_per_request));
        std::string body = "{\"input\":[";
        for (int i = 0; i < k; ++i) {
          if (i > 0) body += ',';
          ctxembed::AppendJsonString(texts[rng() % texts.size()], &body);
        }
        absl::StrAppend(&body, "],\"truncate\":true,\"normalize\":false");
        if (!absl::GetFlag(FLAGS_model).empty()) {
          body += ",\"model\":";
          ctxembed::AppendJsonString(absl::GetFlag(FLAGS_model), &body);
        }
        body += "}";
        http::request<http::string_body> req(http::verb::post, "/v1/embeddings",
                                             11);
        req.set(http::field::host, host);
        req.set(http::field::content_type, "application/json");
        if (const int ms = absl::GetFlag(FLAGS_deadline_ms); ms > 0) {
          req.set("X-Request-Timeout-Ms", std::to_string(ms));
        }
        req.body() = std::move(body);
        req.prepare_payload();
        const auto sent = Clock::now();
        http::write(*stream, req, ec);
        http::response<http::string_body> res;
        if (!ec) http::read(*stream, buffer, res, ec);
        const auto now = Clock::now();
        const double ms =
            std::chrono::duration<double, std::milli>(now - sent).count();
        grpc::Status status;
        if (ec) {
          status = grpc::Status(grpc::StatusCode::UNAVAILABLE, ec.message());
          stream.reset();
        } else if (res.result_int() == 429) {
          status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "");
        } else if (res.result_int() == 504) {
          status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "");
        } else if (res.result_int() != 200) {
          status = grpc::Status(grpc::StatusCode::UNKNOWN,
                                std::to_string(res.result_int()));
        }
        if (sent >= warm_end) load.recorder.Add(status, ms, ms, k);
        if (!ec && !res.keep_alive()) stream.reset();
      }
    });
  }
  for (auto& t : callers) t.join();
}

void RunOpen(Load& load, Clock::time_point start, Clock::time_point warm_end,
             Clock::time_point end) {
  std::mt19937 rng(7);
  std::exponential_distribution<double> gap(absl::GetFlag(FLAGS_rate));
  auto next = start;
  while (next < end) {
    std::this_thread::sleep_until(next);
    if (load.outstanding() >= absl::GetFlag(FLAGS_max_outstanding)) {
      std::lock_guard<std::mutex> lock(load.recorder.mu);
      load.recorder.dropped++;
    } else {
      load.Send(rng, next, next >= warm_end, [] {});
    }
    next += std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(gap(rng)));
  }
  while (load.outstanding() > 0) {  // bounded: calls end by deadline or reply
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string target = absl::GetFlag(FLAGS_target);
  if (!IsLoopback(target)) {
    std::fprintf(stderr, "loadgen: %s is not a loopback address\n",
                 target.c_str());
    return 1;
  }
  std::vector<std::string> texts;
  std::ifstream in(absl::GetFlag(FLAGS_sentences));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) texts.push_back(line);
  }
  if (texts.empty()) {
    std::fprintf(stderr, "loadgen: no sentences in --sentences\n");
    return 1;
  }
  if (const std::string http = absl::GetFlag(FLAGS_http_target);
      !http.empty() && (!IsLoopback(http) || http.rfind(':') == 0 ||
                        http.rfind(':') == std::string::npos)) {
    std::fprintf(stderr,
                 "loadgen: --http_target=%s is not a loopback "
                 "host:port\n",
                 http.c_str());
    return 1;
  }
  const std::vector<std::string> http_texts = texts;
  Load load(std::move(texts));
  const auto start = Clock::now();
  const auto warm_end =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup_s)));
  const auto end =
      warm_end +
      std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(absl::GetFlag(FLAGS_duration_s)));
  const bool open = absl::GetFlag(FLAGS_mode) == "open";
  const std::string rpc = absl::GetFlag(FLAGS_rpc);
  if (rpc != "unary" && rpc != "stream") {
    std::fprintf(stderr, "loadgen: --rpc is unary or stream, not %s\n",
                 rpc.c_str());
    return 1;
  }
  if (rpc == "stream" && (open || !absl::GetFlag(FLAGS_http_target).empty())) {
    std::fprintf(stderr,
                 "loadgen: --rpc=stream runs the closed loop over gRPC "
                 "only\n");
    return 1;
  }
  if (!absl::GetFlag(FLAGS_http_target).empty()) {
    RunClosedHttp(load, http_texts, warm_end, end);
  } else if (rpc == "stream") {
    RunClosedStreams(load, warm_end, end);
  } else if (open) {
    RunOpen(load, start, warm_end, end);
  } else {
    RunClosed(load, start, warm_end, end);
  }
  Recorder& r = load.recorder;
  std::lock_guard<std::mutex> lock(r.mu);
  const double seconds = absl::GetFlag(FLAGS_duration_s);
  std::string codes;
  for (const auto& [code, n] : r.codes) {
    absl::StrAppend(&codes, codes.empty() ? "" : ",", "\"", code, "\":", n);
  }
  const std::string json = absl::StrFormat(
      "{\"label\":\"%s\",\"mode\":\"%s\",\"concurrency\":%d,\"rate\":%.1f,"
      "\"duration_s\":%.1f,\"requests_per_s\":%.1f,\"sentences_per_s\":%.1f,"
      "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
      "\"error_p50_ms\":%.3f,\"error_p99_ms\":%.3f,"
      "\"error_sent_p50_ms\":%.3f,\"error_sent_p99_ms\":%.3f,\"dropped\":%d,"
      "\"codes\":{%s}}",
      absl::GetFlag(FLAGS_label), open ? "open" : "closed",
      absl::GetFlag(FLAGS_concurrency), absl::GetFlag(FLAGS_rate), seconds,
      r.ok_latency_ms.size() / seconds, r.ok_sentences / seconds,
      Percentile(r.ok_latency_ms, 0.5), Percentile(r.ok_latency_ms, 0.9),
      Percentile(r.ok_latency_ms, 0.99), Percentile(r.ok_latency_ms, 0.999),
      Percentile(r.error_latency_ms, 0.5), Percentile(r.error_latency_ms, 0.99),
      Percentile(r.error_sent_ms, 0.5), Percentile(r.error_sent_ms, 0.99),
      static_cast<int>(r.dropped), codes);
  std::printf("%s\n", json.c_str());
  if (const std::string path = absl::GetFlag(FLAGS_out_json); !path.empty()) {
    std::ofstream(path, std::ios::app) << json << "\n";
  }
  if (const std::string path = absl::GetFlag(FLAGS_out_md); !path.empty()) {
    std::ofstream(path, std::ios::app) << absl::StrFormat(
        "| %s | %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %s |\n",
        absl::GetFlag(FLAGS_label), open ? "open" : "closed",
        r.ok_latency_ms.size() / seconds, r.ok_sentences / seconds,
        Percentile(r.ok_latency_ms, 0.5), Percentile(r.ok_latency_ms, 0.9),
        Percentile(r.ok_latency_ms, 0.99), Percentile(r.ok_latency_ms, 0.999),
        codes);
  }
  return 0;
}
