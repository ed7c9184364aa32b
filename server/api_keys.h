// API keys (--api_keys_file): clients send the metadata
// "authorization: Bearer <key>"; calls without a valid key are refused with
// UNAUTHENTICATED.
#ifndef CTXEMBED_SERVER_API_KEYS_H_
#define CTXEMBED_SERVER_API_KEYS_H_

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scheduling/mutex.h"

namespace ctxembed {

// Thread-safe. Keys are kept as SHA-256 digests and compared in constant
// time (every digest is compared, whatever matches).
class ApiKeys {
 public:
  using Digest = std::array<unsigned char, 32>;

  // Reads `path`: one key per line, or "sha256:" and the key's SHA-256 in
  // hex (64 digits), so that the file need not hold the keys themselves.
  // Blank lines and lines starting with '#' are skipped. INVALID_ARGUMENT
  // naming the file and line for a malformed line or a file with no key;
  // NOT_FOUND if it cannot be read.
  static absl::StatusOr<std::unique_ptr<ApiKeys>> Load(const std::string& path);

  // `authorization` is the value of the call's "authorization" metadata
  // (nullopt if absent). OK for "Bearer <a valid key>"; UNAUTHENTICATED
  // with a message saying what is wrong (missing, not "Bearer <key>", not
  // valid), never echoing the key. Before checking, re-reads the file if
  // it changed (looked at no more than once a second); a file that no
  // longer parses keeps the previous keys and is logged.
  absl::Status Check(std::optional<absl::string_view> authorization);

  static Digest Sha256(absl::string_view text);

 private:
  ApiKeys(std::string path, std::vector<Digest> digests, std::string file_state)
      : path_(std::move(path)),
        digests_(std::move(digests)),
        file_state_(std::move(file_state)) {}
  void MaybeReload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  Mutex mu_;
  std::vector<Digest> digests_ ABSL_GUARDED_BY(mu_);
  std::string file_state_ ABSL_GUARDED_BY(mu_);  // mtime and size, as text
  std::chrono::steady_clock::time_point last_look_ ABSL_GUARDED_BY(mu_) =
      std::chrono::steady_clock::now();
};

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_API_KEYS_H_
