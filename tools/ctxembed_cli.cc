// ctxembed-cli: embeddings from the command line, through a server or
// locally.
//
//   ctxembed-cli embed "the dog bit the man" "the man bit the dog"
//   cat sentences.txt | ctxembed-cli embed --server=127.0.0.1:50051
//   ctxembed-cli embed --local --model_dir=models/default < sentences.txt
//   ctxembed-cli tokenize "some text"     ctxembed-cli models
//
// Texts come from the arguments after the command, or else one per line of
// standard input. Output: one JSON object per line and input, in order:
//   embed:    {"index":0,"input":"...","embedding":[...]}
//   tokens:   {"index":0,"input":"...","tokens":[...],"vectors":[[...],...]}
//   tokenize: {"index":0,"input":"...","tokens":[...]}
//   models:   {"name":"...","dimension":100,...}
// Exit status 0 on success; 1 with a message on stderr otherwise.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "ctxembed/v1/embedder.grpc.pb.h"
#include "inference/json_writer.h"
#include "inference/request_handler.h"
#include "model/kernels.h"
#include "model/status_macros.h"
#include "server/grpc_status.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "server address host:port");
ABSL_FLAG(bool, local, false, "run the model in this process, no server");
ABSL_FLAG(std::string, model_dir, "", "with --local: the model directory");
ABSL_FLAG(std::string, model, "", "model name (empty: the server's default)");
ABSL_FLAG(std::string, cpu_isa, "auto",
          "with --local: encoder kernels (auto, v2, v3, v4, generic)");
ABSL_FLAG(bool, normalize, false, "return unit-length vectors");
ABSL_FLAG(bool, truncate, false, "cut texts longer than the model's limit");
ABSL_FLAG(std::string, pooling, "",
          "fasttext, mean, max, last or sif (empty: the model's own)");
ABSL_FLAG(int, batch, 64, "texts per request");
ABSL_FLAG(double, timeout_s, 30, "deadline of each call, in seconds");

namespace ctxembed {
namespace {

// --- JSON output -----------------------------------------------------------

void AppendTokens(const google::protobuf::RepeatedPtrField<std::string>& tokens,
                  std::string* out) {
  out->push_back('[');
  for (int i = 0; i < tokens.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(tokens[i], out);
  }
  out->push_back(']');
}

std::string LineStart(size_t index, absl::string_view input) {
  std::string line = absl::StrCat("{\"index\":", index, ",\"input\":");
  AppendJsonString(input, &line);
  return line;
}

// --- Backends: a server over gRPC, or the model in this process ------------

class Backend {
 public:
  virtual ~Backend() = default;
  virtual absl::Status Embed(const v1::EmbedRequest& req,
                             v1::EmbedResponse* resp) = 0;
  virtual absl::Status EmbedTokens(const v1::EmbedRequest& req,
                                   v1::EmbedTokensResponse* resp) = 0;
  virtual absl::Status Tokenize(const v1::TokenizeRequest& req,
                                v1::TokenizeResponse* resp) = 0;
  virtual absl::Status ListModels(v1::ListModelsResponse* resp) = 0;
};

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

class RemoteBackend : public Backend {
 public:
  explicit RemoteBackend(const std::string& address)
      : stub_(v1::Embedder::NewStub(grpc::CreateChannel(
            address, grpc::InsecureChannelCredentials()))) {}

  absl::Status Embed(const v1::EmbedRequest& req,
                     v1::EmbedResponse* resp) override {
    Context ctx;
    return FromGrpc(stub_->Embed(&ctx.c, req, resp));
  }
  absl::Status EmbedTokens(const v1::EmbedRequest& req,
                           v1::EmbedTokensResponse* resp) override {
    Context ctx;
    return FromGrpc(stub_->EmbedTokens(&ctx.c, req, resp));
  }
  absl::Status Tokenize(const v1::TokenizeRequest& req,
                        v1::TokenizeResponse* resp) override {
    Context ctx;
    return FromGrpc(stub_->Tokenize(&ctx.c, req, resp));
  }
  absl::Status ListModels(v1::ListModelsResponse* resp) override {
    Context ctx;
    return FromGrpc(stub_->ListModels(&ctx.c, {}, resp));
  }

 private:
  struct Context {
    Context() {
      c.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(
                         absl::GetFlag(FLAGS_timeout_s) * 1000)));
    }
    grpc::ClientContext c;
  };
  std::unique_ptr<v1::Embedder::Stub> stub_;
};

class LocalBackend : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<LocalBackend>> Create(
      const std::string& model_dir) {
    auto backend = std::unique_ptr<LocalBackend>(new LocalBackend());
    CTXEMBED_RETURN_IF_ERROR(SetDefaultKernels(absl::GetFlag(FLAGS_cpu_isa)));
    CTXEMBED_ASSIGN_OR_RETURN(auto model, Model::Load(model_dir));
    CTXEMBED_RETURN_IF_ERROR(backend->registry_.Add(std::move(model)));
    return backend;
  }
  absl::Status Embed(const v1::EmbedRequest& req,
                     v1::EmbedResponse* resp) override {
    CallStats stats;
    return handler_.Embed(req, resp, &stats);
  }
  absl::Status EmbedTokens(const v1::EmbedRequest& req,
                           v1::EmbedTokensResponse* resp) override {
    CallStats stats;
    return handler_.EmbedTokens(req, resp, &stats);
  }
  absl::Status Tokenize(const v1::TokenizeRequest& req,
                        v1::TokenizeResponse* resp) override {
    CallStats stats;
    return handler_.Tokenize(req, resp, &stats);
  }
  absl::Status ListModels(v1::ListModelsResponse* resp) override {
    return handler_.ListModels({}, resp);
  }

 private:
  LocalBackend() = default;
  ModelRegistry registry_;
  // No request-count limit of its own: --batch decides.
  RequestHandler handler_{{.max_inputs_per_request = 1 << 30}, &registry_};
};

// --- Commands ---------------------------------------------------------------

absl::StatusOr<v1::Pooling> PoolingFlag() {
  const std::string p = absl::GetFlag(FLAGS_pooling);
  if (p.empty()) return v1::POOLING_UNSPECIFIED;
  v1::Pooling pooling = v1::POOLING_UNSPECIFIED;
  if (p == absl::AsciiStrToLower(p) &&
      v1::Pooling_Parse(absl::StrCat("POOLING_", absl::AsciiStrToUpper(p)),
                        &pooling) &&
      pooling != v1::POOLING_UNSPECIFIED) {
    return pooling;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--pooling=", p, ": expected fasttext, mean, max, last or sif"));
}

// Runs `batch_fn(first_index, request)` over the texts in --batch chunks.
template <typename BatchFn>
absl::Status ForEachBatch(const std::vector<std::string>& texts,
                          BatchFn batch_fn) {
  CTXEMBED_ASSIGN_OR_RETURN(v1::Pooling pooling, PoolingFlag());
  const size_t batch =
      static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_batch)));
  for (size_t first = 0; first < texts.size(); first += batch) {
    v1::EmbedRequest req;
    req.set_model(absl::GetFlag(FLAGS_model));
    req.set_normalize(absl::GetFlag(FLAGS_normalize));
    req.set_truncate(absl::GetFlag(FLAGS_truncate));
    req.set_pooling(pooling);
    for (size_t i = first; i < std::min(texts.size(), first + batch); ++i) {
      req.add_inputs(texts[i]);
    }
    CTXEMBED_RETURN_IF_ERROR(batch_fn(first, req));
  }
  return absl::OkStatus();
}

absl::Status RunEmbed(Backend& backend, const std::vector<std::string>& texts) {
  return ForEachBatch(texts, [&](size_t first, const v1::EmbedRequest& req) {
    v1::EmbedResponse resp;
    CTXEMBED_RETURN_IF_ERROR(backend.Embed(req, &resp));
    for (int i = 0; i < resp.embeddings_size(); ++i) {
      std::string line = LineStart(first + i, req.inputs(i));
      line.append(",\"embedding\":");
      AppendJsonFloats(resp.embeddings(i), &line);
      std::cout << line << "}\n";
    }
    return absl::OkStatus();
  });
}

absl::Status RunTokens(Backend& backend,
                       const std::vector<std::string>& texts) {
  return ForEachBatch(texts, [&](size_t first, const v1::EmbedRequest& req) {
    v1::EmbedTokensResponse resp;
    CTXEMBED_RETURN_IF_ERROR(backend.EmbedTokens(req, &resp));
    for (int i = 0; i < resp.results_size(); ++i) {
      const v1::TokenEmbeddings& r = resp.results(i);
      std::string line = LineStart(first + i, req.inputs(i));
      line.append(",\"tokens\":");
      AppendTokens(r.tokens(), &line);
      line.append(",\"vectors\":[");
      for (int t = 0; t < r.vectors_size(); ++t) {
        if (t > 0) line.push_back(',');
        AppendJsonFloats(r.vectors(t), &line);
      }
      std::cout << line << "]}\n";
    }
    return absl::OkStatus();
  });
}

absl::Status RunTokenize(Backend& backend,
                         const std::vector<std::string>& texts) {
  return ForEachBatch(texts, [&](size_t first, const v1::EmbedRequest& embed) {
    v1::TokenizeRequest req;
    req.set_model(embed.model());
    *req.mutable_inputs() = embed.inputs();
    v1::TokenizeResponse resp;
    CTXEMBED_RETURN_IF_ERROR(backend.Tokenize(req, &resp));
    for (int i = 0; i < resp.results_size(); ++i) {
      std::string line = LineStart(first + i, req.inputs(i));
      line.append(",\"tokens\":");
      AppendTokens(resp.results(i).tokens(), &line);
      std::cout << line << "}\n";
    }
    return absl::OkStatus();
  });
}

absl::Status RunModels(Backend& backend) {
  v1::ListModelsResponse resp;
  CTXEMBED_RETURN_IF_ERROR(backend.ListModels(&resp));
  for (const v1::ModelInfo& m : resp.models()) {
    std::string line = "{\"name\":";
    AppendJsonString(m.name(), &line);
    absl::StrAppend(&line, ",\"dimension\":", m.dimension(),
                    ",\"architecture\":");
    AppendJsonString(m.architecture(), &line);
    absl::StrAppend(&line, ",\"max_tokens\":", m.max_tokens(), ",\"pooling\":");
    AppendJsonString(m.pooling(), &line);
    absl::StrAppend(&line,
                    ",\"is_default\":", m.is_default() ? "true" : "false", "}");
    std::cout << line << "\n";
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend() {
  if (!absl::GetFlag(FLAGS_local)) {
    return std::unique_ptr<Backend>(
        new RemoteBackend(absl::GetFlag(FLAGS_server)));
  }
  const std::string dir = absl::GetFlag(FLAGS_model_dir);
  if (dir.empty())
    return absl::InvalidArgumentError("--local needs --model_dir");
  CTXEMBED_ASSIGN_OR_RETURN(auto local, LocalBackend::Create(dir));
  return std::unique_ptr<Backend>(std::move(local));
}

absl::Status Run(const std::vector<char*>& args) {
  if (args.size() < 2) {
    return absl::InvalidArgumentError(
        "usage: ctxembed-cli embed|tokens|tokenize|models [TEXT...]");
  }
  const std::string command = args[1];
  CTXEMBED_ASSIGN_OR_RETURN(auto backend, MakeBackend());
  if (command == "models") return RunModels(*backend);
  std::vector<std::string> texts(args.begin() + 2, args.end());
  if (texts.empty()) {
    for (std::string line; std::getline(std::cin, line);) texts.push_back(line);
  }
  if (command == "embed") return RunEmbed(*backend, texts);
  if (command == "tokens") return RunTokens(*backend, texts);
  if (command == "tokenize") return RunTokenize(*backend, texts);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown command \"", command,
                   "\"; known: embed, tokens, tokenize, models"));
}

}  // namespace
}  // namespace ctxembed

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "embeddings from the command line.\n"
      "  ctxembed-cli embed|tokens|tokenize|models [--server=H:P | --local "
      "--model_dir=DIR] [TEXT...]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  std::ios::sync_with_stdio(false);
  absl::Status status = ctxembed::Run(args);
  std::cout.flush();
  if (!status.ok()) {
    std::fprintf(stderr, "ctxembed-cli: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
