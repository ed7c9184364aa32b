#include "model/kernels.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/cpu_info.h"

namespace ctxembed {
namespace {

std::atomic<const KernelTable*> default_kernels{nullptr};

}  // namespace

std::vector<const KernelTable*> SupportedKernels() {
#if defined(CTXEMBED_KERNELS_X86_64)
  std::vector<const KernelTable*> out;
  if (CpuHasLevel(2)) out.push_back(&kernels_v2::kTable);
  if (CpuHasLevel(3)) out.push_back(&kernels_v3::kTable);
  if (CpuHasLevel(4)) out.push_back(&kernels_v4::kTable);
  if (out.empty()) out.push_back(&kernels_generic::kTable);  // below v2
  return out;
#else
  return {&kernels_generic::kTable};
#endif
}

absl::StatusOr<const KernelTable*> FindKernels(absl::string_view name) {
  const std::vector<const KernelTable*> supported = SupportedKernels();
  if (name == "auto" && !supported.empty()) return supported.back();
  for (const KernelTable* k : supported) {
    if (name == k->isa) return k;
  }
  const std::string list = absl::StrJoin(
      supported, ", ",
      [](std::string* out, const KernelTable* k) { out->append(k->isa); });
#if defined(CTXEMBED_KERNELS_X86_64)
  const bool known =
      name == "v2" || name == "v3" || name == "v4" || name == "generic";
#else
  const bool known = name == "generic";
#endif
  if (!known) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown CPU level \"", name, "\"; this build has auto, ", list));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("this CPU (", CpuIsa(), ") cannot run the ", name,
                   " kernels; it runs ", list));
}

const ReducedGemm* Bf16GemmIfSupported() {
#if defined(CTXEMBED_KERNELS_X86_64)
  if (CpuHasBf16()) return &kernels_bf16::kGemm;
#endif
  return nullptr;
}

const ReducedGemm* Int8GemmIfSupported(const KernelTable& kernels) {
#if defined(CTXEMBED_KERNELS_X86_64)
  if (absl::string_view(kernels.isa) == "v4" && CpuHasVnni()) {
    return &kernels_int8::kGemm;
  }
#endif
  (void)kernels;
  return nullptr;
}

std::string KernelsLevelName(const KernelTable& kernels) {
  const absl::string_view isa = kernels.isa;
  return isa == "generic" ? std::string(isa) : absl::StrCat("x86-64-", isa);
}

const KernelTable& DefaultKernels() {
  const KernelTable* k = default_kernels.load(std::memory_order_acquire);
  if (k != nullptr) return *k;
  k = *FindKernels("auto");
  default_kernels.store(k, std::memory_order_release);
  return *k;
}

absl::Status SetDefaultKernels(absl::string_view name) {
  absl::StatusOr<const KernelTable*> k = FindKernels(name);
  if (!k.ok()) return k.status();
  default_kernels.store(*k, std::memory_order_release);
  return absl::OkStatus();
}

}  // namespace ctxembed
