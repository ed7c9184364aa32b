#include "inference/model_registry.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ctxembed {
namespace {

void SortHighestFirst(std::vector<Servable>* versions) {
  std::sort(versions->begin(), versions->end(),
            [](const Servable& a, const Servable& b) {
              return a.version > b.version;
            });
}

}  // namespace

absl::Status ModelRegistry::Add(Servable servable) {
  MutexLock lock(&mu_);
  const std::string& name = servable.model->name();
  for (Entry& e : entries_) {
    if (e.name != name) continue;
    for (const Servable& s : e.versions) {
      if (s.version == servable.version) {
        return absl::AlreadyExistsError(absl::StrCat(
            "a model named \"", name, "\"",
            servable.version == 0 ? ""
                                  : absl::StrCat(" version ", servable.version),
            " is loaded"));
      }
    }
    e.versions.push_back(std::move(servable));
    SortHighestFirst(&e.versions);
    return absl::OkStatus();
  }
  entries_.push_back({name, {std::move(servable)}});
  return absl::OkStatus();
}

int ModelRegistry::Publish(const std::string& name,
                           std::vector<Servable> servables) {
  SortHighestFirst(&servables);
  MutexLock lock(&mu_);
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const Entry& e) { return e.name == name; });
  if (it == entries_.end()) {
    if (!servables.empty()) entries_.push_back({name, std::move(servables)});
    return 0;
  }
  int retired = 0;
  for (Servable& old : it->versions) {
    const bool kept =
        std::any_of(servables.begin(), servables.end(), [&](const Servable& s) {
          return s.version == old.version && s.model == old.model;
        });
    if (!kept) {
      unloading_.push_back(std::move(old));
      ++retired;
    }
  }
  if (servables.empty()) {
    entries_.erase(it);
  } else {
    it->versions = std::move(servables);
  }
  return retired;
}

std::vector<Servable> ModelRegistry::TakeUnused() {
  std::vector<Servable> unused;
  MutexLock lock(&mu_);
  for (auto it = unloading_.begin(); it != unloading_.end();) {
    // No longer handed out, so once only this list holds the batcher, no
    // one will again. (Inline servables, without a batcher, go at once.)
    if (it->batcher != nullptr && it->batcher.use_count() > 1) {
      ++it;
      continue;
    }
    unused.push_back(std::move(*it));
    it = unloading_.erase(it);
  }
  return unused;
}

std::vector<Servable> ModelRegistry::Unloading() const {
  MutexLock lock(&mu_);
  return unloading_;
}

std::string ModelRegistry::LoadedNames() const {
  std::vector<std::string> names;
  for (const Entry& e : entries_) {
    for (const Servable& s : e.versions) {
      names.push_back(s.version == 0 ? e.name
                                     : absl::StrCat(e.name, "@", s.version));
    }
  }
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<Servable> ModelRegistry::GetServable(
    absl::string_view name) const {
  MutexLock lock(&mu_);
  if (entries_.empty()) {
    return absl::UnavailableError("no model is loaded yet");
  }
  if (name.empty()) return entries_.front().versions.front();
  absl::string_view base = name;
  int64_t version = -1;
  const size_t at = name.rfind('@');
  if (at != absl::string_view::npos &&
      absl::SimpleAtoi(name.substr(at + 1), &version) && version >= 0) {
    base = name.substr(0, at);
  } else {
    version = -1;
  }
  for (const Entry& e : entries_) {
    if (e.name == name) return e.versions.front();
    if (version < 0 || e.name != base) continue;
    for (const Servable& s : e.versions) {
      if (s.version == version) return s;
    }
  }
  return absl::NotFoundError(absl::StrCat(
      "model \"", name, "\" is not loaded; loaded: ", LoadedNames()));
}

absl::StatusOr<std::shared_ptr<const Model>> ModelRegistry::Get(
    absl::string_view name) const {
  absl::StatusOr<Servable> s = GetServable(name);
  if (!s.ok()) return s.status();
  return s->model;
}

std::vector<Servable> ModelRegistry::List() const {
  MutexLock lock(&mu_);
  std::vector<Servable> all;
  for (const Entry& e : entries_) {
    all.insert(all.end(), e.versions.begin(), e.versions.end());
  }
  return all;
}

std::vector<std::shared_ptr<Batcher>> ModelRegistry::Batchers() const {
  std::vector<std::shared_ptr<Batcher>> batchers;
  std::vector<Servable> all = List();
  for (Servable& s : Unloading()) all.push_back(std::move(s));
  for (const Servable& s : all) {
    if (s.batcher != nullptr) batchers.push_back(s.batcher);
  }
  return batchers;
}

std::string ModelRegistry::default_name() const {
  MutexLock lock(&mu_);
  return entries_.empty() ? "" : entries_.front().name;
}

}  // namespace ctxembed
