#include "scheduler/namespace_models.h"

#include <cmath>
#include <utility>

#include "absl/strings/string_view.h"

namespace kvpool::scheduler {

Status NamespaceModel::Validate() const {
  if (block_tokens == 0) return InvalidArgumentError("namespace model: block_tokens must be > 0");
  if (!(token_s >= 0) || !std::isfinite(token_s)) {
    return InvalidArgumentError("namespace model: token_s must be a finite value >= 0, got " +
                                std::to_string(token_s));
  }
  if (!(attention_s >= 0) || !std::isfinite(attention_s)) {
    return InvalidArgumentError(
        "namespace model: attention_s must be a finite value >= 0, got " +
        std::to_string(attention_s));
  }
  return Status::Ok();
}

NamespaceModels::NamespaceModels(NamespaceModel fallback) : fallback_(std::move(fallback)) {
  if (!fallback_.Validate().ok()) fallback_ = NamespaceModel{};
}

Status NamespaceModels::Set(std::string_view ns, const NamespaceModel& model) {
  if (ns.empty()) return InvalidArgumentError("namespace model: empty namespace name");
  KVPOOL_RETURN_IF_ERROR(model.Validate().WithContext("namespace '" + std::string(ns) + "'"));
  models_[std::string(ns)] = model;
  return Status::Ok();
}

const NamespaceModel& NamespaceModels::Get(std::string_view ns) const {
  auto it = models_.find(absl::string_view(ns.data(), ns.size()));
  return it == models_.end() ? fallback_ : it->second;
}

bool NamespaceModels::Contains(std::string_view ns) const {
  return models_.contains(absl::string_view(ns.data(), ns.size()));
}

}  // namespace kvpool::scheduler
