#include "model/parallel_runner.h"

namespace ctxembed {

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
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Await(absl::Condition(this, &ParallelRunner::HasWork));
    if (stop_) return;
    const std::function<void()>* task = task_;
    task_ = nullptr;
    mu_.Unlock();
    (*task)();
    mu_.Lock();
    task_done_ = true;
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
      task_ = &b;
    }
  }
  a();
  if (!use_helper) {
    b();
    return;
  }
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&task_done_));
  busy_ = false;
}

}  // namespace ctxembed
