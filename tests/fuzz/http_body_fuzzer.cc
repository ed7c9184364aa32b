// libFuzzer target: raw HTTP request bodies, as the HTTP front door receives
// them, through ParseHttpCall for every route that takes a body, and the
// parsed requests' echoes through the answer writers (JSON string escaping).
#include <cstddef>
#include <cstdint>

#include "server/http_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view body(reinterpret_cast<const char*>(data), size);
  for (ctxembed::HttpRoute route :
       {ctxembed::HttpRoute::kOpenAiEmbeddings, ctxembed::HttpRoute::kEmbed,
        ctxembed::HttpRoute::kEmbedAll, ctxembed::HttpRoute::kTokenize,
        ctxembed::HttpRoute::kSimilarity}) {
    for (bool auto_truncate : {false, true}) {
      absl::StatusOr<ctxembed::HttpCall> call = ctxembed::ParseHttpCall(
          route, body, {.auto_truncate = auto_truncate});
      if (!call.ok()) {
        (void)ctxembed::ErrorJson(call.status());
        continue;
      }
      // The model name and inputs come back in answers: write them.
      ctxembed::v1::EmbedResponse response;
      response.set_model(call->embed.model());
      for (const std::string& input : call->embed.inputs()) {
        response.add_embeddings()->add_values(static_cast<float>(input.size()));
      }
      (void)ctxembed::OpenAiEmbeddingsJson(*call, response);
      ctxembed::v1::TokenizeResponse tokens;
      tokens.add_results()->mutable_tokens()->CopyFrom(call->tokenize.inputs());
      (void)ctxembed::TokenizeJson(tokens);
    }
  }
  return 0;
}
