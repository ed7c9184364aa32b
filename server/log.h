// Minimal structured-enough logging to stderr (Debian's abseil has no
// absl/log). One line per event, with a UTC timestamp and a severity letter.
#ifndef CTXEMBED_SERVER_LOG_H_
#define CTXEMBED_SERVER_LOG_H_

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ctxembed {

// Thread-safe: one fprintf per line.
inline void Log(char severity, absl::string_view message) {
  const std::string when = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                            absl::UTCTimeZone());
  std::fprintf(stderr, "%c %s ctxembed: %.*s\n", severity, when.c_str(),
               static_cast<int>(message.size()), message.data());
}

template <typename... Args>
void LogInfo(const Args&... args) {
  Log('I', absl::StrCat(args...));
}
template <typename... Args>
void LogError(const Args&... args) {
  Log('E', absl::StrCat(args...));
}

}  // namespace ctxembed

#endif  // CTXEMBED_SERVER_LOG_H_
