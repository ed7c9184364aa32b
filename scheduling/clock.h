// Time for the scheduler, injectable so tests are deterministic.
#ifndef CTXEMBED_SCHEDULING_CLOCK_H_
#define CTXEMBED_SCHEDULING_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ctxembed {

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds on a monotonic scale (only differences matter).
  virtual int64_t NowMicros() const = 0;
  // The process-wide steady clock.
  static const Clock* Real();
};

// A clock that moves only when told to. Thread-safe.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t start_micros = 1'000'000) : now_(start_micros) {}
  int64_t NowMicros() const override { return now_.load(); }
  void Advance(int64_t micros) { now_ += micros; }

 private:
  std::atomic<int64_t> now_;
};

inline const Clock* Clock::Real() {
  class SteadyClock : public Clock {
   public:
    int64_t NowMicros() const override {
      return std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    }
  };
  static const SteadyClock clock;
  return &clock;
}

// Seconds on the steady clock since `start` (for durations reported in
// metrics and logs).
inline double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace ctxembed

#endif  // CTXEMBED_SCHEDULING_CLOCK_H_
