// Compiled for the x86-64 baseline (see model/CMakeLists.txt), so that the
// check runs on CPUs the rest of the binary cannot.
#include "model/cpu_info.h"

namespace ctxembed {
namespace {

#if defined(__x86_64__)
// The x86-64 psABI levels, by the features __builtin_cpu_supports knows
// (libgcc reports AVX and AVX-512 only when the OS saves their registers).
bool V2() {
  return __builtin_cpu_supports("sse3") && __builtin_cpu_supports("ssse3") &&
         __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("sse4.2") &&
         __builtin_cpu_supports("popcnt");
}
bool V3() {
  return V2() && __builtin_cpu_supports("avx") &&
         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
         __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("fma");
}
bool V4() {
  return V3() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
}
#endif

}  // namespace

const char* BuildIsa() {
#if defined(CTXEMBED_X86_64_V2)
  return "x86-64-v2";
#else
  return "generic";
#endif
}

bool CpuHasLevel(int level) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  switch (level) {
    case 2:
      return V2();
    case 3:
      return V3();
    case 4:
      return V4();
  }
#endif
  return false;
}

bool CpuHasVnni() {
#if defined(__x86_64__)
  return CpuHasLevel(4) && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

bool CpuHasBf16() {
#if defined(__x86_64__)
  return CpuHasLevel(4) && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

const char* CpuIsa() {
#if defined(__x86_64__)
  if (CpuHasLevel(4)) return "x86-64-v4";
  if (CpuHasLevel(3)) return "x86-64-v3";
  if (CpuHasLevel(2)) return "x86-64-v2";
  return "x86-64";
#else
  return "other";
#endif
}

bool CpuRunsBuild() {
#if defined(CTXEMBED_X86_64_V2)
  return CpuHasLevel(2);
#else
  return true;
#endif
}

}  // namespace ctxembed
