#include "server/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "inference/embed_job.h"
#include "scheduling/clock.h"
#include "scheduling/mutex.h"
#include "server/job_group.h"
#include "server/log.h"

namespace ctxembed {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

class HttpServer::Impl {
 public:
  Impl(const Options& options, const Services& services)
      : options_(options), services_(services) {}

  absl::Status Listen();
  void Run() {
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void StopAccepting() {
    if (stopping_.exchange(true)) return;
    net::post(acceptor_.get_executor(), [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
    });
  }
  bool WaitIdle(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (in_flight_.load() > 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    return in_flight_.load() == 0;
  }
  void Shutdown(absl::Duration timeout) {
    StopAccepting();
    WaitIdle(timeout);
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }

  const Options options_;
  const Services services_;
  // Before ioc_: sessions still queued in it update these as it is
  // destroyed.
  // Requests read and not yet answered (answer written or connection gone).
  std::atomic<int> in_flight_{0};
  // Sessions alive (open connections).
  std::atomic<int> connections_{0};
  net::io_context ioc_{1};
  tcp::acceptor acceptor_{ioc_};
  net::steady_timer retry_timer_{ioc_};
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};

 private:
  void Accept();
  // Answers a connection over max_connections with 503 and closes it.
  void Refuse(tcp::socket socket);
};

namespace {

using Request = http::request<http::string_body>;

absl::string_view View(beast::string_view s) {
  return absl::string_view(s.data(), s.size());
}
using Response = http::response<http::string_body>;

// One connection. Reads a request, answers it, reads the next: pipelined
// requests wait in the read buffer and are answered in order.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl* server)
      : stream_(std::move(socket)), server_(server) {
    ++server_->connections_;
  }
  ~Session() { --server_->connections_; }

  void Start() {
    net::dispatch(stream_.get_executor(),
                  [self = shared_from_this()] { self->Read(); });
  }

 private:
  const HttpServer::Options& options() const { return server_->options_; }
  const HttpServer::Services& services() const { return server_->services_; }

  // The idle timeout runs while reading a request and while writing its
  // answer, not while the answer is computed.
  void ArmTimeout() {
    stream_.expires_after(std::chrono::milliseconds(
        options().idle_timeout_ms > 0 ? options().idle_timeout_ms : 60000));
  }

  void Read() {
    parser_.emplace();
    parser_->body_limit(options().max_body_bytes);
    parser_->header_limit(16 * 1024);
    ArmTimeout();
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->OnRead(ec);
                     });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      start_ = std::chrono::steady_clock::now();
      ++server_->in_flight_;
      absl::StatusOr<HttpRoute> route = FindRoute(
          View(parser_->get().method_string()), View(parser_->get().target()));
      Answer(route.ok() ? MetricMethod(*route) : Method::kHttpEmbed,
             absl::OutOfRangeError(
                 absl::StrCat("the request body is over max_message_bytes (",
                              options().max_body_bytes, " bytes)")),
             "", 413);
      return;
    }
    if (ec) {
      // Closed, timed out, or not HTTP: nothing to answer.
      Close();
      return;
    }
    ++server_->in_flight_;
    start_ = std::chrono::steady_clock::now();
    request_ = parser_->release();
    keep_alive_ = request_.keep_alive() && !server_->stopping_.load();
    Handle();
  }

  void Handle() {
    absl::StatusOr<HttpRoute> route =
        FindRoute(View(request_.method_string()), View(request_.target()));
    if (!route.ok()) {
      Answer(Method::kHttpInfo, route.status(), "",
             route.status().code() == absl::StatusCode::kFailedPrecondition
                 ? 405
                 : 404);
      return;
    }
    method_ = MetricMethod(*route);
    if (*route == HttpRoute::kHealth) {
      const bool serving = services().serving() && !server_->stopping_.load();
      Answer(method_,
             serving ? absl::OkStatus() : absl::UnavailableError("not serving"),
             serving ? "{\"status\":\"ok\"}" : "");
      return;
    }
    if (server_->stopping_.load()) {
      Answer(method_, absl::UnavailableError("the server is shutting down"),
             "");
      return;
    }
    if (services().api_keys != nullptr) {
      std::optional<absl::string_view> authorization;
      auto it = request_.find(http::field::authorization);
      if (it != request_.end()) {
        authorization =
            absl::string_view(it->value().data(), it->value().size());
      }
      if (absl::Status s = services().api_keys->Check(authorization); !s.ok()) {
        services().metrics->RecordRejected("", "unauthenticated");
        Answer(method_, s, "");
        return;
      }
    }
    if (*route == HttpRoute::kInfo) {
      v1::ListModelsResponse models;
      absl::Status s =
          services().handler->ListModels(v1::ListModelsRequest(), &models);
      const v1::ModelInfo* info = nullptr;
      for (const v1::ModelInfo& m : models.models()) {
        if (m.is_default()) info = &m;
      }
      if (s.ok() && info == nullptr) {
        s = absl::UnavailableError("no model is loaded yet");
      }
      Answer(method_, s,
             s.ok() ? InfoJson(*info, options().max_inputs_per_request,
                               options().max_body_bytes)
                    : "");
      return;
    }
    absl::StatusOr<HttpCall> call =
        ParseHttpCall(*route, request_.body(), options().api);
    if (!call.ok()) {
      Answer(method_, call.status(), "");
      return;
    }
    call_ = *std::move(call);
    if (*route == HttpRoute::kTokenize) {
      v1::TokenizeResponse response;
      CallStats stats;
      absl::Status s =
          services().handler->Tokenize(call_.tokenize, &response, &stats);
      tokens_ = stats.tokens;
      inputs_ = call_.tokenize.inputs_size();
      Answer(method_, s, s.ok() ? TokenizeJson(response) : "");
      return;
    }
    if (*route == HttpRoute::kSimilarity) {
      RunScore();
      return;
    }
    RunEmbed();
  }

  // Embeddings: the request becomes a job on the model's batcher, as a gRPC
  // call's does.
  void RunEmbed() {
    const EmbedJob::Kind kind = call_.route == HttpRoute::kEmbedAll
                                    ? EmbedJob::Kind::kEmbedTokens
                                    : EmbedJob::Kind::kEmbed;
    inputs_ = call_.embed.inputs_size();
    CallStats stats;
    absl::StatusOr<PreparedEmbed> prepared =
        services().handler->Prepare(call_.embed, kind, &stats);
    tokens_ = stats.tokens;
    if (prepared.ok() && call_.dimensions > 0 &&
        call_.dimensions != prepared->spec.tower->output_dim()) {
      const std::vector<int>& cuts =
          prepared->servable.model->config().matryoshka_dimensions;
      if (std::find(cuts.begin(), cuts.end(), call_.dimensions) != cuts.end()) {
        // Cut after pooling, then normalize the prefix (not the whole).
        call_.cut_to = call_.dimensions;
        call_.renormalize = call_.embed.normalize();
        call_.embed.set_normalize(false);
      } else {
        prepared = absl::InvalidArgumentError(absl::StrCat(
            "dimensions: model \"", prepared->servable.model->name(),
            "\" gives ", prepared->spec.tower->output_dim(),
            "-dimensional vectors",
            cuts.empty() ? " and was not trained to have them cut"
                         : absl::StrCat(" and may be cut to ",
                                        absl::StrJoin(cuts, ", "), " only")));
      }
    }
    if (!prepared.ok()) {
      Answer(method_, prepared.status(), "");
      return;
    }
    std::vector<std::vector<TokenList>> sentences;
    sentences.push_back(std::move(prepared->sentences));
    RunJobs(prepared->servable, {prepared->spec}, std::move(sentences),
            [this](const Servable& version,
                   const std::vector<std::shared_ptr<EmbedJob>>& jobs) {
              return Format(version, *jobs[0]);
            });
  }

  // Similarity: (source, sentence) pairs scored as Score does.
  void RunScore() {
    inputs_ = call_.score.pairs_size();
    CallStats stats;
    absl::StatusOr<PreparedScore> prepared =
        services().handler->PrepareScore(call_.score, &stats);
    tokens_ = stats.tokens;
    if (!prepared.ok()) {
      Answer(method_, prepared.status(), "");
      return;
    }
    RunJobs(prepared->servable, prepared->specs, std::move(prepared->sentences),
            [this](const Servable& version,
                   const std::vector<std::shared_ptr<EmbedJob>>& jobs) {
              v1::ScoreResponse response;
              RequestHandler::FillScoreResponse(call_.score, version, jobs,
                                                &response);
              services().metrics->RecordTokens(version.model->name(),
                                               response.usage().tokens());
              return SimilarityJson(response);
            });
  }

  using Formatter = std::function<std::string(
      const Servable&, const std::vector<std::shared_ptr<EmbedJob>>&)>;

  // Runs one job per spec on the servable's batcher, as a gRPC call does;
  // when the last ends, `format` builds the answer (on that job's thread),
  // which is written on the connection's executor. The first job to fail
  // cancels the others and is the answer.
  void RunJobs(const Servable& servable,
               const std::vector<EmbedJob::Spec>& specs,
               std::vector<std::vector<TokenList>> sentences,
               Formatter format) {
    servable_ = servable;
    Batcher* batcher = servable_.batcher.get();
    int64_t deadline = Task::kNoDeadline;
    int64_t timeout_ms = options().default_timeout_ms;
    if (auto it = request_.find("X-Request-Timeout-Ms"); it != request_.end()) {
      int64_t ms = 0;
      if (!absl::SimpleAtoi(View(it->value()), &ms) || ms <= 0) {
        Answer(method_,
               absl::InvalidArgumentError(
                   "X-Request-Timeout-Ms must be a positive integer"),
               "");
        return;
      }
      timeout_ms = ms;
    }
    if (timeout_ms > 0) {
      deadline = batcher->clock()->NowMicros() + timeout_ms * 1000;
    }
    auto self = shared_from_this();
    const Servable version{servable_.model, nullptr, servable_.version};
    group_ = JobGroup::Create(
        batcher, specs, std::move(sentences), deadline,
        [self, version, format = std::move(format)](
            const absl::Status& status,
            const std::vector<std::shared_ptr<EmbedJob>>& jobs) {
          std::string body;
          if (status.ok()) body = format(version, jobs);
          net::post(self->stream_.get_executor(),
                    [self, status, body = std::move(body)]() mutable {
                      self->group_.reset();
                      self->Answer(self->method_, status, std::move(body));
                    });
        });
    WatchForDisconnect();
    group_->Submit();
  }

  std::string Format(const Servable& version, EmbedJob& job) {
    if (call_.route == HttpRoute::kEmbedAll) {
      v1::EmbedTokensResponse response;
      RequestHandler::FillTokensResponse(call_.embed, version, job, &response);
      services().metrics->RecordTokens(version.model->name(),
                                       response.usage().tokens());
      return EmbedAllJson(response);
    }
    v1::EmbedResponse response;
    RequestHandler::FillEmbedResponse(call_.embed, version, job, &response);
    services().metrics->RecordTokens(version.model->name(),
                                     response.usage().tokens());
    return call_.route == HttpRoute::kOpenAiEmbeddings
               ? OpenAiEmbeddingsJson(call_, response)
               : EmbedJson(response);
  }

  // While the job waits or runs, a client that closes the connection
  // cancels it (pipelined bytes that arrive instead are left for the next
  // read).
  void WatchForDisconnect() {
    stream_.socket().async_wait(
        tcp::socket::wait_read,
        [self = shared_from_this()](beast::error_code ec) {
          if (ec || self->group_ == nullptr) return;
          char byte;
          const ssize_t n = ::recv(self->stream_.socket().native_handle(),
                                   &byte, 1, MSG_PEEK | MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            self->keep_alive_ = false;
            self->group_->Cancel();
          }
        });
  }

  void Answer(Method method, const absl::Status& status, std::string body,
              int http_status = 0) {
    if (http_status == 0) http_status = HttpStatusFor(status.code());
    if (!status.ok()) body = ErrorJson(status);
    auto response = std::make_shared<Response>(
        static_cast<http::status>(http_status),
        request_.version() == 0 ? 11 : request_.version());
    response->set(http::field::server, "ctxembed");
    response->set(http::field::content_type, "application/json");
    if (status.code() == absl::StatusCode::kResourceExhausted) {
      response->set(http::field::retry_after, "1");
    }
    response->keep_alive(keep_alive_);
    response->body() = std::move(body);
    response->prepare_payload();
    const double seconds = SecondsSince(start_);
    services().metrics->RecordRequest(method, status.code(), seconds);
    if (options().access_log) {
      auto id = request_.find("X-Request-Id");
      const std::string line = absl::StrCat(
          "{\"time\":\"", absl::FormatTime(absl::Now(), absl::UTCTimeZone()),
          "\",\"route\":\"", MethodName(method), "\",\"status\":", http_status,
          ",\"latency_ms\":", seconds * 1e3, ",\"inputs\":", inputs_,
          ",\"tokens\":", tokens_, ",\"request_id\":\"",
          id == request_.end() ? "" : absl::CHexEscape(View(id->value())),
          "\"}\n");
      std::fwrite(line.data(), 1, line.size(), stderr);
    }
    ArmTimeout();
    http::async_write(
        stream_, *response,
        [self = shared_from_this(), response](beast::error_code ec, size_t) {
          --self->server_->in_flight_;
          self->servable_ = Servable();
          if (ec || !self->keep_alive_) {
            self->Close();
            return;
          }
          self->inputs_ = self->tokens_ = 0;
          self->Read();
        });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  HttpServer::Impl* const server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Request request_;
  bool keep_alive_ = true;
  std::chrono::steady_clock::time_point start_;
  Method method_ = Method::kHttpInfo;
  HttpCall call_;
  Servable servable_;                // held until the answer is written
  std::shared_ptr<JobGroup> group_;  // of the request in flight
  int64_t inputs_ = 0, tokens_ = 0;
};

// A connection over max_connections: answered 503 with Retry-After, then
// whatever the client sent is read and dropped until it closes or a second
// passes (closing with unread bytes would reset the connection, and the
// reset can destroy the answer before the client reads it).
class RefusedConnection
    : public std::enable_shared_from_this<RefusedConnection> {
 public:
  RefusedConnection(tcp::socket socket, int max_connections)
      : stream_(std::move(socket)) {
    response_.result(http::status::service_unavailable);
    response_.version(11);
    response_.set(http::field::server, "ctxembed");
    response_.set(http::field::content_type, "application/json");
    response_.set(http::field::retry_after, "1");
    response_.keep_alive(false);
    response_.body() = ErrorJson(absl::UnavailableError(
        absl::StrCat("the server has --max_connections=", max_connections,
                     " HTTP connections open; retry later")));
    response_.prepare_payload();
  }

  void Start() {
    stream_.expires_after(std::chrono::seconds(1));
    http::async_write(
        stream_, response_,
        [self = shared_from_this()](beast::error_code ec, size_t) {
          if (ec) return;
          beast::error_code ignored;
          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
          self->Drain();
        });
  }

 private:
  void Drain() {
    stream_.async_read_some(
        net::buffer(discard_),
        [self = shared_from_this()](beast::error_code ec, size_t) {
          if (ec) return;  // closed by the client, or the second is up
          self->Drain();
        });
  }

  beast::tcp_stream stream_;
  Response response_;
  char discard_[4096];
};

}  // namespace

absl::Status HttpServer::Impl::Listen() {
  const std::string& address = options_.address;
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_address=", address, ": expected host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  beast::error_code ec;
  const auto ip = net::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http_address=", address, ": \"", host, "\" is not an IP address"));
  }
  const tcp::endpoint endpoint(ip, static_cast<unsigned short>(port));
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", address, ": ", ec.message()));
  }
  port_ = acceptor_.local_endpoint().port();
  Accept();
  return absl::OkStatus();
}

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(
      net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
        if (ec) {
          if (!acceptor_.is_open()) return;  // closed: stopping
          // Out of descriptors (EMFILE) or memory: the connection stays in
          // the backlog and accepting again at once would spin; retry soon.
          retry_timer_.expires_after(std::chrono::milliseconds(50));
          retry_timer_.async_wait([this](beast::error_code) { Accept(); });
          return;
        }
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        if (options_.max_connections > 0 &&
            connections_.load() >= options_.max_connections) {
          Refuse(std::move(socket));
        } else {
          std::make_shared<Session>(std::move(socket), this)->Start();
        }
        Accept();
      });
}

void HttpServer::Impl::Refuse(tcp::socket socket) {
  services_.metrics->RecordRejected("", "connections");
  std::make_shared<RefusedConnection>(std::move(socket),
                                      options_.max_connections)
      ->Start();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const Options& options, const Services& services) {
  auto impl = std::make_unique<Impl>(options, services);
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Shutdown(absl::ZeroDuration()); }

int HttpServer::port() const { return impl_->port(); }

void HttpServer::StopAccepting() { impl_->StopAccepting(); }

bool HttpServer::WaitIdle(absl::Duration timeout) {
  return impl_->WaitIdle(timeout);
}

void HttpServer::Shutdown(absl::Duration timeout) { impl_->Shutdown(timeout); }

}  // namespace ctxembed
