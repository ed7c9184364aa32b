// Compiled for the x86-64 baseline (see server/CMakeLists.txt), so that the
// check runs on CPUs the rest of the binary cannot.
#include "server/cpu_info.h"

namespace ctxembed {
namespace {

#if defined(__x86_64__)
// The x86-64 psABI levels, by the features __builtin_cpu_supports knows.
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
#if defined(CTXEMBED_X86_64_V3)
  return "x86-64-v3";
#else
  return "generic";
#endif
}

const char* CpuIsa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (V4()) return "x86-64-v4";
  if (V3()) return "x86-64-v3";
  if (V2()) return "x86-64-v2";
  return "x86-64";
#else
  return "other";
#endif
}

bool CpuRunsBuild() {
#if defined(CTXEMBED_X86_64_V3) && defined(__x86_64__)
  __builtin_cpu_init();
  return V3();
#else
  return true;
#endif
}

}  // namespace ctxembed
