// ctxembed-server: serves contextual text embeddings over gRPC.
//
//   ctxembed-server --model_dir=models/default
//
// Exit status: 0 after a clean shutdown (SIGTERM or SIGINT); 1 if the
// options are bad, a port cannot be bound or a model does not load, with one
// line on stderr naming the file and the problem.
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "model/cpu_info.h"
#include "model/kernels.h"
#include "server/log.h"
#include "server/server.h"

ABSL_FLAG(std::string, grpc_address, "127.0.0.1:50051",
          "host:port to serve gRPC on (port 0: any free port)");
ABSL_FLAG(std::string, metrics_address, "127.0.0.1:9464",
          "host:port of the Prometheus /metrics endpoint; empty: none");
ABSL_FLAG(std::vector<std::string>, model_dir, {},
          "model directories (comma-separated); the first is the default "
          "model");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain: serve gRPC over TLS (re-read on change)");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of the certificate");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle: require client certificates it signed (mTLS)");
ABSL_FLAG(std::string, tls_allowed_subjects, "",
          "with --tls_client_ca_file: client certificate subjects "
          "(\"CN=a,O=b\") or common names allowed, separated by ';'; empty: "
          "any certificate the CA signed");
ABSL_FLAG(int, tls_refresh_interval_s, 10,
          "how often the TLS files are checked for changes");
ABSL_FLAG(std::string, health_address, "",
          "host:port serving only grpc.health.v1.Health in plaintext (for "
          "probes when TLS is on); empty: none");
ABSL_FLAG(std::string, api_keys_file, "",
          "file of API keys (one per line, or sha256:<hex>); clients send "
          "\"authorization: Bearer <key>\"; re-read on change");
ABSL_FLAG(std::string, cpu_isa, "auto",
          "encoder kernels to run: auto (the best this CPU runs), v2, v3 or "
          "v4 (x86-64 levels), generic");
ABSL_FLAG(int, max_inputs_per_request, 256,
          "most inputs (or pairs) one request may carry");
ABSL_FLAG(int, max_token_bytes, 1024,
          "longest token in bytes; longer tokens are cut at a character "
          "boundary (bounds subword work); 0: no bound");
ABSL_FLAG(int, max_message_bytes, 64 << 20,
          "largest gRPC request or response message, in bytes");
ABSL_FLAG(int64_t, drain_timeout_ms, 10000,
          "on SIGTERM, how long queued and in-flight calls may take to "
          "finish");
ABSL_FLAG(int64_t, lame_duck_ms, 0,
          "on SIGTERM, how long to go on serving with health NOT_SERVING "
          "before the drain, so clients that watch health move away first");
ABSL_FLAG(std::string, model_version_policy, "latest",
          "for a --model_dir of numbered version directories: serve the "
          "highest version that loads (latest), or every version (all; "
          "requests name one as model@version)");
ABSL_FLAG(int64_t, model_poll_interval_ms, 2000,
          "how often the model directories are rescanned for new or removed "
          "versions; 0: only on SIGHUP");
ABSL_FLAG(int64_t, malloc_mmap_threshold_bytes, 4 << 20,
          "allocations this large (large weight matrices; not a batch's "
          "buffers) get their own memory mapping, returned to the system "
          "when freed, so a replaced model version's memory goes back; "
          "the heap keeps up to twice this of freed memory for the next "
          "batches (glibc's trim threshold); 0 keeps glibc's adaptive "
          "thresholds");
ABSL_FLAG(std::string, http_address, "127.0.0.1:8080",
          "host:port of the HTTP/JSON front door (OpenAI /v1/embeddings, "
          "text-embeddings-inference routes); empty: none");
ABSL_FLAG(int64_t, http_default_timeout_ms, 0,
          "deadline of an HTTP request without an X-Request-Timeout-Ms "
          "header; 0: none");
ABSL_FLAG(bool, access_log, false,
          "one JSON line per HTTP request on stderr: time, route, status, "
          "latency, inputs, tokens, request id (never the text)");
ABSL_FLAG(bool, auto_truncate, false,
          "the default of truncate: inputs over the model's max_tokens are "
          "cut, not refused (gRPC requests always; HTTP requests unless they "
          "send \"truncate\": false)");
ABSL_FLAG(bool, batching, true,
          "gather concurrent requests into batches; false runs each request "
          "as a batch of its own (still queued, admitted and timed)");
ABSL_FLAG(int, max_batch_sentences, 32, "most sentences in one batch");
ABSL_FLAG(int, max_batch_tokens, 4096,
          "most padded tokens (longest sentence x sentences) in one batch");
ABSL_FLAG(int64_t, max_queue_delay_micros, 2000,
          "longest a sentence waits for its batch to fill while others run");
ABSL_FLAG(int, max_queue_sentences, 1024,
          "most sentences waiting per model; more are refused "
          "(RESOURCE_EXHAUSTED)");
ABSL_FLAG(int64_t, max_queue_wait_micros, 0,
          "refuse (RESOURCE_EXHAUSTED) requests that would wait longer than "
          "this by the measured batch times; 0: off");
ABSL_FLAG(int, num_batch_workers, 0,
          "threads running batches, shared by all models; 0: one per core");
ABSL_FLAG(int64_t, max_inflight_tokens, 262144,
          "tokens admitted and not yet answered, across all models; past it "
          "requests get RESOURCE_EXHAUSTED (one larger than it OUT_OF_RANGE); "
          "0: no bound");
ABSL_FLAG(int, max_stream_inflight, 8,
          "requests one EmbedStream may have unanswered");
ABSL_FLAG(int64_t, max_connection_age_ms, 0,
          "close client connections after this long so clients spread over "
          "new replicas; 0: never");
ABSL_FLAG(int64_t, max_connection_idle_ms, 0,
          "close connections with no call for this long; 0: never");
ABSL_FLAG(int, max_concurrent_streams, 0,
          "most calls open at once on one connection; 0: no bound");
ABSL_FLAG(int, max_connections, 1024,
          "client connections served at once per port (gRPC: connections "
          "holding calls; further calls get RESOURCE_EXHAUSTED; HTTP: open "
          "connections; further ones get 503); 0: no bound");
ABSL_FLAG(int64_t, max_connection_age_grace_ms, 20000,
          "time calls in flight get when a connection is closed for age");

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "ctxembed-server: error: %s\n", message.c_str());
  return 1;
}

// Every flag of this file may also come from the environment as
// CTXEMBED_<FLAG NAME IN CAPITALS> (e.g. CTXEMBED_MODEL_DIR). Runs before the
// command line is parsed, so the command line wins. Returns an error naming
// the variable if a value does not parse.
absl::Status ApplyEnvironment() {
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::StrContains(flag->Filename(), "server/main.cc")) continue;
    const std::string var = "CTXEMBED_" + absl::AsciiStrToUpper(name);
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat(var, "=", value, ": ", error));
    }
  }
  return absl::OkStatus();
}

// Blocks the shutdown signals (and SIGHUP, a model rescan) in this thread
// and every thread it starts, so that main() can take them synchronously
// with sigwait().
sigset_t BlockShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Each connection is a file descriptor, and many systems start processes
// with a soft limit of 1024: raised to the hard limit so --max_connections,
// not the descriptor table, bounds the connections (with a warning when the
// hard limit cannot hold them).
void RaiseFileLimit(int max_connections) {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  // Both ports, plus model files, metrics and health connections.
  const rlim_t needed = 2 * static_cast<rlim_t>(max_connections) + 256;
  if (max_connections > 0 && limit.rlim_cur != RLIM_INFINITY &&
      limit.rlim_cur < needed) {
    ctxembed::LogInfo("warning: the open-file limit (", limit.rlim_cur,
                      ") is below what --max_connections=", max_connections,
                      " on two ports needs (", needed,
                      "); raise it (ulimit -n) or lower --max_connections");
  }
}

// The server's options from the flags; INVALID_ARGUMENT naming a flag
// whose value is not one of its choices.
absl::StatusOr<ctxembed::EmbeddingServer::Options> OptionsFromFlags() {
  using Options = ctxembed::EmbeddingServer::Options;
  Options options;
  options.grpc_address = absl::GetFlag(FLAGS_grpc_address);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options.max_inputs_per_request = absl::GetFlag(FLAGS_max_inputs_per_request);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.max_token_bytes = absl::GetFlag(FLAGS_max_token_bytes);
  options.drain_timeout_ms = absl::GetFlag(FLAGS_drain_timeout_ms);
  options.lame_duck_ms = absl::GetFlag(FLAGS_lame_duck_ms);
  options.http_address = absl::GetFlag(FLAGS_http_address);
  options.http_default_timeout_ms =
      absl::GetFlag(FLAGS_http_default_timeout_ms);
  options.access_log = absl::GetFlag(FLAGS_access_log);
  options.auto_truncate = absl::GetFlag(FLAGS_auto_truncate);
  const std::string policy = absl::GetFlag(FLAGS_model_version_policy);
  if (policy == "latest") {
    options.model_version_policy = Options::VersionPolicy::kLatest;
  } else if (policy == "all") {
    options.model_version_policy = Options::VersionPolicy::kAll;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model_version_policy: \"", policy, "\" is neither latest nor all"));
  }
  options.model_poll_interval_ms = absl::GetFlag(FLAGS_model_poll_interval_ms);
  if (options.model_poll_interval_ms < 0) {
    return absl::InvalidArgumentError("--model_poll_interval_ms is negative");
  }
  options.batching = absl::GetFlag(FLAGS_batching);
  options.batch.max_batch_sentences = absl::GetFlag(FLAGS_max_batch_sentences);
  options.batch.max_batch_tokens = absl::GetFlag(FLAGS_max_batch_tokens);
  options.batch.max_queue_delay_micros =
      absl::GetFlag(FLAGS_max_queue_delay_micros);
  options.batch.max_queue_sentences = absl::GetFlag(FLAGS_max_queue_sentences);
  options.num_batch_workers = absl::GetFlag(FLAGS_num_batch_workers);
  options.max_inflight_tokens = absl::GetFlag(FLAGS_max_inflight_tokens);
  options.max_queue_wait_micros = absl::GetFlag(FLAGS_max_queue_wait_micros);
  options.max_stream_inflight = absl::GetFlag(FLAGS_max_stream_inflight);
  options.max_connection_age_ms = absl::GetFlag(FLAGS_max_connection_age_ms);
  options.max_connection_age_grace_ms =
      absl::GetFlag(FLAGS_max_connection_age_grace_ms);
  options.max_connection_idle_ms = absl::GetFlag(FLAGS_max_connection_idle_ms);
  options.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  options.max_connections = absl::GetFlag(FLAGS_max_connections);
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
  options.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  options.tls.refresh_interval_s = absl::GetFlag(FLAGS_tls_refresh_interval_s);
  options.health_address = absl::GetFlag(FLAGS_health_address);
  options.tls_allowed_subjects = absl::StrSplit(
      absl::GetFlag(FLAGS_tls_allowed_subjects), ';', absl::SkipWhitespace());
  options.api_keys_file = absl::GetFlag(FLAGS_api_keys_file);
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "serves contextual text embeddings over gRPC.\n"
      "  ctxembed-server --model_dir=DIR [--grpc_address=127.0.0.1:50051]");
  if (absl::Status env = ApplyEnvironment(); !env.ok()) {
    return Fail(std::string(env.message()));
  }
  absl::ParseCommandLine(argc, argv);
  // Debian builds abseil without NDEBUG, so every Mutex lock would also
  // update a process-wide lock-order graph (about 1% of the server's CPU
  // under load, in GraphCycles). A debugging aid: the tests keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const sigset_t signals = BlockShutdownSignals();
  // glibc raises its mmap threshold each time a mapped block is freed, so
  // after the first model is replaced the next ones' weights land in the
  // heap, which keeps freed pages: a fixed threshold returns them. Fixing
  // it also stops glibc from moving its trim threshold along (to twice the
  // mmap threshold), which stays at 128 KB: the heap then returned each
  // batch's freed buffers to the system, and the next batch faulted them
  // back in, 1.5 to 7 page faults per request at 5.5k requests/s (0.09
  // now: bench/serving.py, section 4). Twice the fixed threshold, as glibc
  // would have it, keeps them, at the cost of up to that much freed memory
  // kept per malloc arena after a burst (bench/serving.py, section 3: RSS
  // 52 -> 71 MB after 2x overload, against 45 -> 53 MB before).
  if (const int64_t bytes = absl::GetFlag(FLAGS_malloc_mmap_threshold_bytes);
      bytes > 0) {
    const int threshold = static_cast<int>(std::min<int64_t>(bytes, 32 << 20));
    mallopt(M_MMAP_THRESHOLD, threshold);
    mallopt(M_TRIM_THRESHOLD, 2 * threshold);
  }

  RaiseFileLimit(absl::GetFlag(FLAGS_max_connections));

  const std::vector<std::string> model_dirs = absl::GetFlag(FLAGS_model_dir);
  if (model_dirs.empty()) return Fail("no --model_dir given");
  // Before anything packs weights: packed layouts are the kernels'.
  if (absl::Status isa =
          ctxembed::SetDefaultKernels(absl::GetFlag(FLAGS_cpu_isa));
      !isa.ok()) {
    return Fail(absl::StrCat("--cpu_isa: ", isa.message()));
  }
  absl::StatusOr<ctxembed::EmbeddingServer::Options> flags = OptionsFromFlags();
  if (!flags.ok()) return Fail(std::string(flags.status().message()));
  const ctxembed::EmbeddingServer::Options& options = *flags;

  auto server = ctxembed::EmbeddingServer::Start(options);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  for (const std::string& dir : model_dirs) {
    absl::Status loaded = (*server)->LoadModel(dir);
    if (!loaded.ok()) {
      (*server)->Shutdown();
      return Fail(std::string(loaded.message()));
    }
  }
  (*server)->SetServing(true);
  // Before "ready": once it is logged, the poller runs too (the kernels'
  // helper thread starts with the first encoder call).
  (*server)->StartReloading();
  ctxembed::LogInfo(
      "kernels ", ctxembed::KernelsLevelName(ctxembed::DefaultKernels()),
      " (--cpu_isa=", absl::GetFlag(FLAGS_cpu_isa), "); this CPU is ",
      ctxembed::CpuIsa(), "; built for ", ctxembed::BuildIsa());
  ctxembed::LogInfo(
      "ready: grpc_port=", (*server)->grpc_port(),
      " metrics_port=", (*server)->metrics_port(),
      " health_port=", (*server)->health_port(),
      " http_port=", (*server)->http_port(),
      options.tls.cert_file.empty()
          ? " plaintext"
          : (options.tls.client_ca_file.empty() ? " tls" : " mtls"),
      options.api_keys_file.empty() ? "" : " api_keys");

  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    ctxembed::LogInfo("received SIGHUP; rescanning the model directories");
    (*server)->RequestReload();
  }
  ctxembed::LogInfo("received ", strsignal(signal_number),
                    "; draining for up to ", options.drain_timeout_ms, " ms");
  (*server)->Shutdown();
  ctxembed::LogInfo("stopped");
  return 0;
}
