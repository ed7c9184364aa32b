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

// A loaded model version and the batcher that runs it (null: calls run
// inline).
struct Servable {
  std::shared_ptr<const Model> model;
  std::shared_ptr<Batcher> batcher;
  // 0 for a model directory without versions.
  int64_t version = 0;
};

// Thread-safe. Readers get a shared_ptr snapshot, so a model version stays
// alive for the requests using it even if the registry's set changes.
class ModelRegistry {
 public:
  // Adds `servable` under its model's name; the first name added is the
  // default. ALREADY_EXISTS if that name and version are loaded.
  absl::Status Add(Servable servable);
  absl::Status Add(std::shared_ptr<const Model> model,
                   std::shared_ptr<Batcher> batcher = nullptr) {
    return Add(Servable{std::move(model), std::move(batcher), 0});
  }
  // Makes `servables` (one name, any versions; empty: none) the versions
  // served under `name`, at once. The versions no longer served stay
  // listed as unloading until TakeUnused hands them out; returns how many.
  // A new name goes last in the list (the default model stays the default
  // while it has versions).
  int Publish(const std::string& name, std::vector<Servable> servables);
  // The unloading versions no request holds any more (their batcher has no
  // other owner: calls hold it until they end), for the caller to drain and
  // release; they leave the list.
  std::vector<Servable> TakeUnused();
  // Versions replaced or removed and still held by requests.
  std::vector<Servable> Unloading() const;

  // The model called `name` (its highest version), "name@version" (that
  // version), or the default model for an empty name. UNAVAILABLE while no
  // model is loaded; NOT_FOUND (listing what is loaded) otherwise.
  absl::StatusOr<std::shared_ptr<const Model>> Get(
      absl::string_view name) const;
  // As Get, with the model's batcher and version.
  absl::StatusOr<Servable> GetServable(absl::string_view name) const;

  // All loaded versions, the default model first, each name's versions
  // from the highest down.
  std::vector<Servable> List() const;
  // The batchers of all models (for shutdown).
  std::vector<std::shared_ptr<Batcher>> Batchers() const;

  // Name of the default model; empty while none is loaded.
  std::string default_name() const;

 private:
  struct Entry {
    std::string name;
    std::vector<Servable> versions;  // highest first; never empty
  };
  std::string LoadedNames() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<Servable> unloading_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ctxembed

#endif  // CTXEMBED_INFERENCE_MODEL_REGISTRY_H_
