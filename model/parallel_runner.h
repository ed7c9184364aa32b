// Runs two pieces of work at once when a helper core is free.
#ifndef CTXEMBED_MODEL_PARALLEL_RUNNER_H_
#define CTXEMBED_MODEL_PARALLEL_RUNNER_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace ctxembed {

// One persistent helper thread that takes posted work in turn. Between
// tasks it polls for up to 50 us (the next step of a layer-by-layer
// computation usually comes sooner, and a futex wake costs several
// microseconds), then sleeps on a condition variable: an idle helper never
// keeps a core from the serving threads for longer. The caller likewise
// polls up to 200 us for its task's end before sleeping. Thread-safe.
//
// Several threads may call Run at once (the server's batch workers). Each
// call posts its second task; the helper takes posted tasks oldest first,
// and a caller that finishes its first task while its second still waits
// takes it back and runs it itself. So no call waits on another's work,
// and a task posted while the helper was busy is still taken by it when it
// frees up in time: a worker that found the helper busy no longer runs
// its whole layer on one core while the other core idles
// (bench/results/serving.md).
class ParallelRunner {
 public:
  // The process-wide runner; its helper starts on first use.
  static ParallelRunner& Shared();

  ParallelRunner();
  ~ParallelRunner();
  ParallelRunner(const ParallelRunner&) = delete;
  ParallelRunner& operator=(const ParallelRunner&) = delete;

  // Runs `a` on the calling thread and `b` on the helper if it gets to it
  // first, else on the calling thread after `a`; returns when both are
  // done. The two must not touch the same memory.
  void Run(const std::function<void()>& a, const std::function<void()>& b);

 private:
  // A posted task, on its caller's stack while Run waits. `taken` is
  // guarded by mu_; `done` is set under mu_ too (so a sleeping caller
  // wakes) and polled without it.
  struct Slot {
    const std::function<void()>* task = nullptr;
    bool taken = false;             // by the helper or back by the caller
    std::atomic<bool> done{false};  // the helper has run it
  };

  void Loop();

  // std::mutex rather than absl::Mutex: Debian's abseil is built without
  // ThreadSanitizer, which then cannot see absl's locks (scheduling/mutex.h
  // explains), and model/ does not depend on scheduling/.
  std::mutex mu_;
  std::condition_variable work_;  // posted_ grew or stop_ was set
  std::condition_variable done_;  // a slot's task is done
  std::deque<Slot*> posted_;      // oldest first; guarded by mu_
  bool stop_ = false;             // guarded by mu_
  // posted_.size(), polled by the helper without the lock.
  std::atomic<int> num_posted_{0};
  std::thread helper_;
};

}  // namespace ctxembed

#endif  // CTXEMBED_MODEL_PARALLEL_RUNNER_H_
