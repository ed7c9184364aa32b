#include "model/json_file.h"

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace ctxembed {

absl::StatusOr<nlohmann::json> ParseJsonStrict(absl::string_view text,
                                               absl::string_view file_name) {
  using Json = nlohmann::json;
  // nlohmann keeps the last of duplicate keys silently; a file that says
  // two things is refused instead.
  std::vector<absl::flat_hash_set<std::string>> keys;  // one per open object
  std::string duplicate;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == Json::parse_event_t::key && !keys.empty() &&
               !keys.back().insert(parsed.get<std::string>()).second &&
               duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  Json json;
  try {
    json = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        file_name, ": invalid JSON at byte ", e.byte, ": ", e.what()));
  } catch (const Json::exception& e) {
    // Not a syntax error but still no JSON we can hold: a number out of
    // range (1e400), for one.
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, ": invalid JSON: ", e.what()));
  }
  if (!duplicate.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        file_name, ": key \"", duplicate, "\" appears twice in one object"));
  }
  return json;
}

}  // namespace ctxembed
