#include "model/parallel_runner.h"

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
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  helper_.join();
}

void ParallelRunner::Loop() {
  while (true) {
    SpinFor([this] { return posted_.load(std::memory_order_acquire); },
            kHelperSpin);
    const std::function<void()>* task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &ParallelRunner::HasWork));
      if (stop_) return;
      task = task_;
      task_ = nullptr;
      posted_.store(false, std::memory_order_relaxed);
    }
    (*task)();
    absl::MutexLock lock(&mu_);
    task_done_ = true;
    done_.store(true, std::memory_order_release);
  }
}

void ParallelRunner::Run(const std::function<void()>& a,
                         const std::function<void()>& b) {
  bool use_helper = false;
  {
    absl::MutexLock lock(&mu_);
    if (!busy_) {
      use_helper = true;
      busy_ = true;
      task_done_ = false;
      done_.store(false, std::memory_order_relaxed);
      task_ = &b;
      posted_.store(true, std::memory_order_release);
    }
  }
  a();
  if (!use_helper) {
    b();
    return;
  }
  SpinFor([this] { return done_.load(std::memory_order_acquire); },
          kCallerSpin);
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&task_done_));
  busy_ = false;
}

}  // namespace ctxembed
