#include "model/parallel_runner.h"

#include <algorithm>
#include <chrono>

namespace ctxembed {
namespace {

// Polls `ready` for up to `limit`; true if it came true. A short spin
// catches the next step of a layer-by-layer computation without a futex
// wake (several microseconds each); the bound keeps an idle helper from
// taking a core from the serving threads.
template <typename Ready>
bool SpinFor(Ready ready, std::chrono::nanoseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

constexpr std::chrono::microseconds kHelperSpin(50);
constexpr std::chrono::microseconds kCallerSpin(200);

}  // namespace

ParallelRunner& ParallelRunner::Shared() {
  static ParallelRunner* runner = new ParallelRunner();  // never destroyed
  return *runner;
}

ParallelRunner::ParallelRunner() : helper_([this] { Loop(); }) {}

ParallelRunner::~ParallelRunner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_.notify_one();
  helper_.join();
}

void ParallelRunner::Loop() {
  while (true) {
    SpinFor([this] { return num_posted_.load(std::memory_order_acquire) > 0; },
            kHelperSpin);
    Slot* slot;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_.wait(lock, [this] { return stop_ || !posted_.empty(); });
      if (stop_) return;
      slot = posted_.front();
      posted_.pop_front();
      num_posted_.store(static_cast<int>(posted_.size()),
                        std::memory_order_relaxed);
      slot->taken = true;
    }
    (*slot->task)();
    {
      // The caller returns, and its slot goes, once it sees `done` under
      // the lock: nothing here touches the slot after that.
      std::lock_guard<std::mutex> lock(mu_);
      slot->done.store(true, std::memory_order_release);
    }
    done_.notify_all();  // callers of several Runs may sleep
  }
}

void ParallelRunner::Run(const std::function<void()>& a,
                         const std::function<void()>& b) {
  Slot slot;
  slot.task = &b;
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.push_back(&slot);
    num_posted_.store(static_cast<int>(posted_.size()),
                      std::memory_order_release);
  }
  work_.notify_one();
  a();
  bool run_here = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!slot.taken) {  // the helper has not got to it: run it here
      slot.taken = run_here = true;
      posted_.erase(std::find(posted_.begin(), posted_.end(), &slot));
      num_posted_.store(static_cast<int>(posted_.size()),
                        std::memory_order_relaxed);
    }
  }
  if (run_here) {
    b();
    return;
  }
  SpinFor([&slot] { return slot.done.load(std::memory_order_acquire); },
          kCallerSpin);
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock,
             [&slot] { return slot.done.load(std::memory_order_relaxed); });
}

}  // namespace ctxembed
