// JSON files a model directory holds, parsed strictly: syntax errors and
// duplicate keys (which nlohmann would resolve silently) are refused, with
// the file named.
#ifndef CTXEMBED_MODEL_JSON_FILE_H_
#define CTXEMBED_MODEL_JSON_FILE_H_

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctxembed {

// INVALID_ARGUMENT "FILE: invalid JSON at byte N: ..." or "FILE: key "k"
// appears twice in one object".
absl::StatusOr<nlohmann::json> ParseJsonStrict(absl::string_view text,
                                               absl::string_view file_name);

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_JSON_FILE_H_
