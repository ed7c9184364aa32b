#include "server/model_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ctxembed {

absl::Status ModelRegistry::Add(std::shared_ptr<const Model> model) {
  absl::MutexLock lock(&mu_);
  for (const auto& m : models_) {
    if (m->name() == model->name()) {
      return absl::AlreadyExistsError(
          absl::StrCat("a model named \"", model->name(), "\" is loaded"));
    }
  }
  models_.push_back(std::move(model));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Model>> ModelRegistry::Get(
    absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  if (models_.empty()) {
    return absl::UnavailableError("no model is loaded yet");
  }
  if (name.empty()) return models_.front();
  for (const auto& m : models_) {
    if (m->name() == name) return m;
  }
  return absl::NotFoundError(absl::StrCat(
      "model \"", name, "\" is not loaded; loaded: ",
      absl::StrJoin(models_, ", ", [](std::string* out, const auto& m) {
        out->append(m->name());
      })));
}

std::vector<std::shared_ptr<const Model>> ModelRegistry::List() const {
  absl::MutexLock lock(&mu_);
  return models_;
}

std::string ModelRegistry::default_name() const {
  absl::MutexLock lock(&mu_);
  return models_.empty() ? "" : models_.front()->name();
}

}  // namespace ctxembed
