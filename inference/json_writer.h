// Writing JSON answers by hand, fast: string literals and float vectors
// (each float as the shortest text that reads back to the same float32).
// Shared by the HTTP front door and the CLI's JSON lines.
#ifndef CTXEMBED_INFERENCE_JSON_WRITER_H_
#define CTXEMBED_INFERENCE_JSON_WRITER_H_

#include <string>

#include "absl/strings/string_view.h"
#include "ctxembed/v1/embedder.pb.h"

namespace ctxembed {

// `s` as a JSON string literal (quotes, backslashes and control characters
// escaped; other bytes, UTF-8 included, as they are).
void AppendJsonString(absl::string_view s, std::string* out);
void AppendJsonFloat(float v, std::string* out);
// [v0,v1,...]
void AppendJsonFloats(const v1::Vector& v, std::string* out);

}  // namespace ctxembed

#endif  // CTXEMBED_INFERENCE_JSON_WRITER_H_
