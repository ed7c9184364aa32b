// The models a server has loaded, by name.
#ifndef CTXEMBED_INFERENCE_MODEL_REGISTRY_H_
#define CTXEMBED_INFERENCE_MODEL_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/model.h"
#include "scheduling/batcher.h"
#include "scheduling/mutex.h"

namespace ctxembed {

// A loaded model and the batcher that runs it (null: calls run inline).
struct Servable {
  std::shared_ptr<const Model> model;
  std::shared_ptr<Batcher> batcher;
};

// Thread-safe. Readers get a shared_ptr snapshot, so a model stays alive for
// the requests using it even if the registry's set changes.
class ModelRegistry {
 public:
  // Adds `model` (with its batcher, which may be null) under its name; the
  // first model added is the default. ALREADY_EXISTS if a model of that name
  // is loaded.
  absl::Status Add(std::shared_ptr<const Model> model,
                   std::shared_ptr<Batcher> batcher = nullptr);

  // The model called `name`, or the default one for an empty name.
  // UNAVAILABLE while no model is loaded; NOT_FOUND (listing the loaded
  // names) for an unknown name.
  absl::StatusOr<std::shared_ptr<const Model>> Get(
      absl::string_view name) const;
  // As Get, with the model's batcher.
  absl::StatusOr<Servable> GetServable(absl::string_view name) const;

  // All loaded models, the default first.
  std::vector<std::shared_ptr<const Model>> List() const;
  // The batchers of all models (for shutdown).
  std::vector<std::shared_ptr<Batcher>> Batchers() const;

  // Name of the default model; empty while none is loaded.
  std::string default_name() const;

 private:
  mutable Mutex mu_;
  std::vector<Servable> servables_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ctxembed

#endif  // CTXEMBED_INFERENCE_MODEL_REGISTRY_H_
