// The models a server has loaded, by name.
#ifndef CTXEMBED_SERVER_MODEL_REGISTRY_H_
#define CTXEMBED_SERVER_MODEL_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "model/model.h"

namespace ctxembed {

// Thread-safe. Readers get a shared_ptr snapshot, so a model stays alive for
// the requests using it even if the registry's set changes.
class ModelRegistry {
 public:
  // Adds `model` under its name; the first model added is the default.
  // ALREADY_EXISTS if a model of that name is loaded.
  absl::Status Add(std::shared_ptr<const Model> model);

  // The model called `name`, or the default one for an empty name.
  // UNAVAILABLE while no model is loaded; NOT_FOUND (listing the loaded
  // names) for an unknown name.
  absl::StatusOr<std::shared_ptr<const Model>> Get(absl::string_view name) const;

  // All loaded models, the default first.
  std::vector<std::shared_ptr<const Model>> List() const;

  // Name of the default model; empty while none is loaded.
  std::string default_name() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<const Model>> models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_MODEL_REGISTRY_H_
