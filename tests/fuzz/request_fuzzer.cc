// libFuzzer target: raw request bytes, as the server receives them, through
// the parser every method uses (ParseMessage), for each request type.
#include <cstddef>
#include <cstdint>

#include "ctxembed/v1/embedder.pb.h"
#include "server/request_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  ctxembed::v1::EmbedRequest embed;
  (void)ctxembed::ParseMessage(bytes, &embed);
  ctxembed::v1::ScoreRequest score;
  (void)ctxembed::ParseMessage(bytes, &score);
  ctxembed::v1::TokenizeRequest tokenize;
  (void)ctxembed::ParseMessage(bytes, &tokenize);
  ctxembed::v1::ListModelsRequest list;
  (void)ctxembed::ParseMessage(bytes, &list);
  return 0;
}
