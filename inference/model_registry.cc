#include "inference/model_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ctxembed {

absl::Status ModelRegistry::Add(std::shared_ptr<const Model> model,
                                std::shared_ptr<Batcher> batcher) {
  MutexLock lock(&mu_);
  for (const Servable& s : servables_) {
    if (s.model->name() == model->name()) {
      return absl::AlreadyExistsError(
          absl::StrCat("a model named \"", model->name(), "\" is loaded"));
    }
  }
  servables_.push_back({std::move(model), std::move(batcher)});
  return absl::OkStatus();
}

absl::StatusOr<Servable> ModelRegistry::GetServable(
    absl::string_view name) const {
  MutexLock lock(&mu_);
  if (servables_.empty()) {
    return absl::UnavailableError("no model is loaded yet");
  }
  if (name.empty()) return servables_.front();
  for (const Servable& s : servables_) {
    if (s.model->name() == name) return s;
  }
  return absl::NotFoundError(absl::StrCat(
      "model \"", name, "\" is not loaded; loaded: ",
      absl::StrJoin(servables_, ", ", [](std::string* out, const Servable& s) {
        out->append(s.model->name());
      })));
}

absl::StatusOr<std::shared_ptr<const Model>> ModelRegistry::Get(
    absl::string_view name) const {
  absl::StatusOr<Servable> s = GetServable(name);
  if (!s.ok()) return s.status();
  return s->model;
}

std::vector<std::shared_ptr<const Model>> ModelRegistry::List() const {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<const Model>> models;
  for (const Servable& s : servables_) models.push_back(s.model);
  return models;
}

std::vector<std::shared_ptr<Batcher>> ModelRegistry::Batchers() const {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Batcher>> batchers;
  for (const Servable& s : servables_) {
    if (s.batcher != nullptr) batchers.push_back(s.batcher);
  }
  return batchers;
}

std::string ModelRegistry::default_name() const {
  MutexLock lock(&mu_);
  return servables_.empty() ? "" : servables_.front().model->name();
}

}  // namespace ctxembed
