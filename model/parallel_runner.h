// Runs two pieces of work at once when a helper core is free.
#ifndef CTXEMBED_MODEL_PARALLEL_RUNNER_H_
#define CTXEMBED_MODEL_PARALLEL_RUNNER_H_

#include <atomic>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace ctxembed {

// One persistent helper thread. Between tasks it polls for up to 50 us (the
// next step of a layer-by-layer computation usually comes sooner, and a
// futex wake costs several microseconds), then sleeps on a condition
// variable: an idle helper never keeps a core from the serving threads for
// longer. The caller likewise polls up to 200 us for its task's end before
// sleeping. Thread-safe.
class ParallelRunner {
 public:
  // The process-wide runner; its helper starts on first use.
  static ParallelRunner& Shared();

  ParallelRunner();
  ~ParallelRunner();
  ParallelRunner(const ParallelRunner&) = delete;
  ParallelRunner& operator=(const ParallelRunner&) = delete;

  // Runs `a` on the calling thread and `b` on the helper if the helper is
  // idle, else `b` after `a`; returns when both are done. The two must not
  // touch the same memory.
  void Run(const std::function<void()>& a, const std::function<void()>& b);

 private:
  void Loop();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || task_ != nullptr;
  }

  absl::Mutex mu_;
  const std::function<void()>* task_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool task_done_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Mirrors of "task_ is set" and task_done_, polled without the lock.
  std::atomic<bool> posted_{false};
  std::atomic<bool> done_{false};
  std::thread helper_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_PARALLEL_RUNNER_H_
