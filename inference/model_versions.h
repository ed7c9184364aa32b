// What a --model_dir entry holds: a model directory (with config.json), or a
// versioned model directory whose numbered subdirectories (1/, 2/, ...) are
// each a complete model directory.
#ifndef CTXEMBED_INFERENCE_MODEL_VERSIONS_H_
#define CTXEMBED_INFERENCE_MODEL_VERSIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ctxembed {

struct ModelVersionDir {
  int64_t version = 0;  // 0: a model directory without versions
  std::string path;
};

struct ModelVersionList {
  bool versioned = false;
  // Ascending by version; one entry (version 0) when not versioned. May be
  // empty for a versioned directory whose versions were all removed.
  std::vector<ModelVersionDir> versions;
};

// Lists `path`'s versions. A subdirectory is a version when its name is
// all digits (at most 18) and it holds a config.json; other names (a
// ".3.partial" being copied, "tmp") are ignored, so publish a version by
// writing it elsewhere on the same filesystem and renaming it in. NOT_FOUND
// when `path` is neither kind: it had no config.json and no versions the
// first time (`expect_versioned` false), and it no longer exists.
absl::StatusOr<ModelVersionList> ListModelVersions(const std::string& path,
                                                   bool expect_versioned);

// A fingerprint of the files under `path` (relative names, sizes and
// modification times): a version that failed to load is tried again only
// when its files change.
std::string DirectoryFingerprint(const std::string& path);

}  // namespace ctxembed

#endif  // CTXEMBED_INFERENCE_MODEL_VERSIONS_H_
