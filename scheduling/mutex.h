// The project's mutex, condition variable and notification: absl's, with the
// lock annotations clang's -Wthread-safety checks, and ThreadSanitizer
// annotations so a TSan build sees the happens-before edges they create.
//
// Why not absl::Mutex directly: Debian's abseil is built without TSan, so a
// TSan build of ctxembed cannot see absl::Mutex lock and unlock, and reports
// every access that the mutex orders as a race. The __tsan_mutex_* calls tell
// TSan what the uninstrumented mutex does; in other builds they vanish.
#ifndef CTXEMBED_SCHEDULING_MUTEX_H_
#define CTXEMBED_SCHEDULING_MUTEX_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#if defined(__SANITIZE_THREAD__)
#define CTXEMBED_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CTXEMBED_TSAN 1
#endif
#endif

#ifdef CTXEMBED_TSAN
#include <sanitizer/tsan_interface.h>
#define CTXEMBED_TSAN_CALL(call) call
#else
#define CTXEMBED_TSAN_CALL(call) static_cast<void>(0)
#endif

namespace ctxembed {

class CondVar;

// An exclusive lock. Thread-safe.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() { CTXEMBED_TSAN_CALL(__tsan_mutex_create(this, 0)); }
  ~Mutex() { CTXEMBED_TSAN_CALL(__tsan_mutex_destroy(this, 0)); }
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    CTXEMBED_TSAN_CALL(__tsan_mutex_pre_lock(this, 0));
    mu_.Lock();
    CTXEMBED_TSAN_CALL(__tsan_mutex_post_lock(this, 0, 0));
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    CTXEMBED_TSAN_CALL(__tsan_mutex_pre_unlock(this, 0));
    mu_.Unlock();
    CTXEMBED_TSAN_CALL(__tsan_mutex_post_unlock(this, 0));
  }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() { mu_.AssertHeld(); }

 private:
  friend class CondVar;
  // What TSan must be told when the lock is released and taken again inside
  // absl (a condition variable wait).
  void AnnotateUnlock() {
    CTXEMBED_TSAN_CALL(__tsan_mutex_pre_unlock(this, 0));
    CTXEMBED_TSAN_CALL(__tsan_mutex_post_unlock(this, 0));
  }
  void AnnotateLock() {
    CTXEMBED_TSAN_CALL(__tsan_mutex_pre_lock(this, 0));
    CTXEMBED_TSAN_CALL(__tsan_mutex_post_lock(this, 0, 0));
  }

  absl::Mutex mu_;
};

// Holds a Mutex for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable for Mutex. Thread-safe. Waits may wake spuriously:
// callers loop on their condition.
class CondVar {
 public:
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    mu->AnnotateUnlock();
    cv_.Wait(&mu->mu_);
    mu->AnnotateLock();
  }
  // Returns true if the timeout ran out.
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    mu->AnnotateUnlock();
    const bool timed_out = cv_.WaitWithTimeout(&mu->mu_, timeout);
    mu->AnnotateLock();
    return timed_out;
  }
  void Signal() { cv_.Signal(); }
  void SignalAll() { cv_.SignalAll(); }

 private:
  absl::CondVar cv_;
};

// A one-shot event: Notify once, wait any number of times. Thread-safe.
class Notification {
 public:
  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
    cv_.SignalAll();
  }
  bool HasBeenNotified() const {
    MutexLock lock(&mu_);
    return notified_;
  }
  void WaitForNotification() const {
    MutexLock lock(&mu_);
    while (!notified_) cv_.Wait(&mu_);
  }
  // True if notified within `timeout`.
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    const absl::Time deadline = absl::Now() + timeout;
    MutexLock lock(&mu_);
    while (!notified_) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      cv_.WaitWithTimeout(&mu_, left);
    }
    return notified_;
  }

 private:
  mutable Mutex mu_;
  mutable CondVar cv_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ctxembed

#endif  // CTXEMBED_SCHEDULING_MUTEX_H_
