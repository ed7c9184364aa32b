// Run-time choice of the kernels (model/kernel_table.h) by CPU: the hot
// loops are compiled for several x86-64 levels and the best one this CPU
// runs is used, unless a flag (--cpu_isa) names another.
//
// A PackedMatrix (and so a loaded model) keeps the table it was packed with:
// packed layouts differ by level, so the choice is made once, before models
// load.
#ifndef CTXEMBED_MODEL_KERNELS_H_
#define CTXEMBED_MODEL_KERNELS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/kernel_table.h"

namespace ctxembed {

// The tables compiled into this build that this CPU can run, lowest level
// first: "v2", "v3", "v4" as the CPU supports them on x86-64 ("generic",
// compiled for the build's baseline, on older x86-64 CPUs and elsewhere).
std::vector<const KernelTable*> SupportedKernels();

// "auto" (the last of SupportedKernels()) or a level's name. Errors:
// INVALID_ARGUMENT for an unknown name, FAILED_PRECONDITION for a level
// this build or this CPU lacks; the message lists the supported ones.
absl::StatusOr<const KernelTable*> FindKernels(absl::string_view name);

// The level's name as CpuIsa() spells CPUs' ("x86-64-v4", ...), or
// "generic": for logs and metrics.
std::string KernelsLevelName(const KernelTable& kernels);

// The bf16 GEMM if this build has it and this CPU runs it (AVX512_BF16),
// else null.
const ReducedGemm* Bf16GemmIfSupported();

// The int8 GEMM (AVX512_VNNI) to pair with `kernels` if this build has it,
// `kernels` are the v4 ones and this CPU has AVX512_VNNI, else null (so
// --cpu_isa=v3 tests the fallback).
const ReducedGemm* Int8GemmIfSupported(const KernelTable& kernels);

// The table models use from now on ("auto" until set). Thread-safe; set it
// before loading models.
const KernelTable& DefaultKernels();
absl::Status SetDefaultKernels(absl::string_view name);

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_KERNELS_H_
