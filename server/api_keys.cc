#include "server/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/log.h"

namespace ctxembed {
namespace {

// mtime and size of `path`, or "" if it cannot be looked at.
std::string FileState(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "";
  return absl::StrCat(st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, ":",
                      st.st_size);
}

absl::StatusOr<std::vector<ApiKeys::Digest>> Parse(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot read the API keys file"));
  }
  std::vector<ApiKeys::Digest> digests;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#') continue;
    if (absl::ConsumePrefix(&text, "sha256:")) {
      ApiKeys::Digest d;
      bool ok = text.size() == 64;
      for (size_t i = 0; ok && i < 32; ++i) {
        uint32_t byte = 0;
        ok = absl::ascii_isxdigit(text[2 * i]) &&
             absl::ascii_isxdigit(text[2 * i + 1]) &&
             absl::SimpleHexAtoi(text.substr(2 * i, 2), &byte);
        d[i] = static_cast<unsigned char>(byte);
      }
      if (!ok) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", number,
                         ": \"sha256:\" must be followed by 64 hex digits"));
      }
      digests.push_back(d);
    } else {
      digests.push_back(ApiKeys::Sha256(text));
    }
  }
  if (digests.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no API key in the file"));
  }
  return digests;
}

}  // namespace

ApiKeys::Digest ApiKeys::Sha256(absl::string_view text) {
  Digest d;
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), d.data(), &size, EVP_sha256(), nullptr);
  return d;
}

absl::StatusOr<std::unique_ptr<ApiKeys>> ApiKeys::Load(
    const std::string& path) {
  const std::string state = FileState(path);
  absl::StatusOr<std::vector<Digest>> digests = Parse(path);
  if (!digests.ok()) return digests.status();
  return std::unique_ptr<ApiKeys>(
      new ApiKeys(path, *std::move(digests), state));
}

void ApiKeys::MaybeReload() {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_look_ < std::chrono::seconds(1)) return;
  last_look_ = now;
  const std::string state = FileState(path_);
  if (state == file_state_) return;
  file_state_ = state;
  absl::StatusOr<std::vector<Digest>> digests = Parse(path_);
  if (!digests.ok()) {
    LogError("API keys not reloaded, the previous ones stay: ",
             digests.status().message());
    return;
  }
  digests_ = *std::move(digests);
  LogInfo("API keys reloaded from ", path_, ": ", digests_.size(), " keys");
}

absl::Status ApiKeys::Check(std::optional<absl::string_view> authorization) {
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError(
        "missing API key: send the metadata \"authorization: Bearer <key>\"");
  }
  absl::string_view key = *authorization;
  if (!absl::ConsumePrefix(&key, "Bearer ") || key.empty()) {
    return absl::UnauthenticatedError(
        "the authorization metadata must be \"Bearer <key>\"");
  }
  const Digest presented = Sha256(key);
  int matches = 0;
  {
    MutexLock lock(&mu_);
    MaybeReload();
    for (const Digest& d : digests_) {
      matches |= CRYPTO_memcmp(d.data(), presented.data(), d.size()) == 0;
    }
  }
  if (matches == 0) {
    return absl::UnauthenticatedError("the API key is not valid");
  }
  return absl::OkStatus();
}

}  // namespace ctxembed
