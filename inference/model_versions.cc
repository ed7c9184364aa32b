#include "inference/model_versions.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ctxembed {
namespace {

namespace fs = std::filesystem;

bool IsVersionName(const std::string& name, int64_t* version) {
  if (name.empty() || name.size() > 18) return false;
  for (char c : name) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(name, version);
}

bool IsFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

}  // namespace

absl::StatusOr<ModelVersionList> ListModelVersions(const std::string& path,
                                                   bool expect_versioned) {
  ModelVersionList list;
  std::error_code ec;
  if (!expect_versioned && IsFile(fs::path(path) / "config.json")) {
    list.versions.push_back({0, path});
    return list;
  }
  fs::directory_iterator it(path, ec);
  if (ec) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot list the directory: ", ec.message()));
  }
  for (const fs::directory_entry& e : it) {
    int64_t version = 0;
    if (!IsVersionName(e.path().filename().string(), &version)) continue;
    if (!e.is_directory(ec) || !IsFile(e.path() / "config.json")) continue;
    list.versions.push_back({version, e.path().string()});
  }
  std::sort(list.versions.begin(), list.versions.end(),
            [](const ModelVersionDir& a, const ModelVersionDir& b) {
              return a.version < b.version;
            });
  list.versioned = true;
  if (list.versions.empty() && !expect_versioned) {
    return absl::NotFoundError(absl::StrCat(
        path,
        "/config.json: No such file or directory (and no numbered version "
        "directories)"));
  }
  return list;
}

std::string DirectoryFingerprint(const std::string& path) {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end;
       it.increment(ec)) {
    const fs::directory_entry& e = *it;
    std::error_code fec;
    const auto size = e.is_regular_file(fec) ? e.file_size(fec) : 0;
    const auto mtime = e.last_write_time(fec).time_since_epoch().count();
    files.push_back(absl::StrCat(fs::relative(e.path(), path, fec).string(),
                                 ":", size, ":", mtime));
  }
  std::sort(files.begin(), files.end());
  std::string out = ec ? "unreadable" : "";
  for (const std::string& f : files) absl::StrAppend(&out, f, "\n");
  return out;
}

}  // namespace ctxembed
