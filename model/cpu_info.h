// What the binary was built for and what the CPU it runs on can do, for the
// startup check, the kernel choice (model/kernels.h), the log and the
// ctxembed_build_info metric.
#ifndef CTXEMBED_MODEL_CPU_INFO_H_
#define CTXEMBED_MODEL_CPU_INFO_H_

namespace ctxembed {

// The x86-64 level everything but the per-level kernels is compiled for:
// "x86-64-v2" (the default on x86-64), or "generic" (CTXEMBED_X86_64_V2=OFF,
// or another architecture).
const char* BuildIsa();

// The highest x86-64 level this CPU (and its OS: the AVX state must be
// enabled) supports: "x86-64-v4", "x86-64-v3", "x86-64-v2", "x86-64", or
// "other" off x86-64.
const char* CpuIsa();

// True if this CPU supports x86-64 level `level` (2, 3 or 4); false off
// x86-64.
bool CpuHasLevel(int level);

// True if this CPU supports x86-64-v4 and AVX512_BF16 (VDPBF16PS).
bool CpuHasBf16();

// True if this CPU supports x86-64-v4 and AVX512_VNNI (VPDPBUSD).
bool CpuHasVnni();

// True if this CPU can run what BuildIsa() names. This file is compiled for
// the baseline, so calling it is safe on any x86-64 CPU.
bool CpuRunsBuild();

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_CPU_INFO_H_
