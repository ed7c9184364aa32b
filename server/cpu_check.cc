// Refuses to start, with one clear line, on a CPU that cannot run this
// build (instead of dying of SIGILL somewhere in the first batch). Runs
// before any other static initializer of the program and is compiled for
// the x86-64 baseline (see server/CMakeLists.txt).
#include <unistd.h>

#include <cstdio>

#include "model/cpu_info.h"

namespace {

__attribute__((constructor(101))) void CheckCpu() {
  if (ctxembed::CpuRunsBuild()) return;
  std::fprintf(stderr,
               "ctxembed: this build needs an %s CPU (SSE4.2, POPCNT); this "
               "one is %s. Rebuild with -DCTXEMBED_X86_64_V2=OFF.\n",
               ctxembed::BuildIsa(), ctxembed::CpuIsa());
  _exit(1);
}

}  // namespace
