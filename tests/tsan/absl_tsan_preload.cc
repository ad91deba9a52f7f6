// LD_PRELOAD shim for TSan runs (scripts/ci-sanitizers.sh, docs/development.md): tells
// ThreadSanitizer about the locks of Debian's abseil.
//
// Debian's libabsl_synchronization is not built with TSan, so TSan never sees absl::Mutex,
// absl::CondVar or absl::Notification synchronise anything, and reports every access to
// ABSL_GUARDED_BY state from two threads as a race. This shim interposes the exported functions
// (our code, gRPC and abseil call them through the PLT), calls the real ones (dlsym RTLD_NEXT)
// and adds TSan's mutex and acquire/release annotations. It changes no behaviour.
//
// Built on its own, without -fsanitize: the __tsan_* functions come from the TSan runtime of the
// executable. They are weak, so a process without TSan (a shell, a tool the tests run) that
// inherits LD_PRELOAD loads the shim and calls only the real functions.
//
// Conditions (Mutex::Await, LockWhen, and the waiters' conditions that Unlock evaluates to pick
// whom to wake) run inside abseil while it holds the mutex, at a moment the annotations above
// present it as released. Condition::Eval is interposed too: within those calls it annotates a
// read lock of the mutex around the evaluation (a Condition only reads the guarded state).
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" {
void __tsan_acquire(void* addr) __attribute__((weak));
void __tsan_release(void* addr) __attribute__((weak));
void __tsan_mutex_pre_lock(void* addr, unsigned flags) __attribute__((weak));
int __tsan_mutex_post_lock(void* addr, unsigned flags, int recursion) __attribute__((weak));
int __tsan_mutex_pre_unlock(void* addr, unsigned flags) __attribute__((weak));
void __tsan_mutex_post_unlock(void* addr, unsigned flags) __attribute__((weak));
}

namespace {

// From <sanitizer/tsan_interface.h>.
constexpr unsigned kReadLock = 1 << 3;
constexpr unsigned kTryLock = 1 << 4;
constexpr unsigned kTryLockFailed = 1 << 5;

bool Tsan() { return __tsan_mutex_post_lock != nullptr; }

// The mutex this thread is inside abseil for (Unlock, Await, LockWhen): a Condition evaluated
// meanwhile is evaluated under it.
thread_local void* t_inside_mu = nullptr;

// Marks the scope of a call into abseil that may evaluate Conditions under `mu`.
class InsideMutex {
 public:
  explicit InsideMutex(void* mu) : saved_(t_inside_mu) { t_inside_mu = mu; }
  ~InsideMutex() { t_inside_mu = saved_; }
  InsideMutex(const InsideMutex&) = delete;
  InsideMutex& operator=(const InsideMutex&) = delete;

 private:
  void* saved_;
};

void* Real(const char* name) {
  void* fn = dlsym(RTLD_NEXT, name);
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_tsan_preload: no %s after this library\n", name);
    std::abort();
  }
  return fn;
}

void Locked(void* mu, unsigned flags) {
  if (!Tsan()) return;
  __tsan_mutex_pre_lock(mu, flags);
  __tsan_mutex_post_lock(mu, flags, 0);
}
void Unlocking(void* mu, unsigned flags) {
  if (!Tsan()) return;
  __tsan_mutex_pre_unlock(mu, flags);
  __tsan_mutex_post_unlock(mu, flags);
}

// absl::Duration and absl::Time are 16-byte trivially copyable values: two integer registers.
struct Pair {
  uint64_t a, b;
};

}  // namespace

#define KVPOOL_REAL(type, name) \
  static const auto real = reinterpret_cast<type>(Real(name))

extern "C" {

// ---- absl::Mutex --------------------------------------------------------------------------
void _ZN4absl7debian35Mutex4LockEv(void* mu) {
  KVPOOL_REAL(void (*)(void*), "_ZN4absl7debian35Mutex4LockEv");
  real(mu);
  Locked(mu, 0);
}
void _ZN4absl7debian35Mutex6UnlockEv(void* mu) {
  KVPOOL_REAL(void (*)(void*), "_ZN4absl7debian35Mutex6UnlockEv");
  Unlocking(mu, 0);
  InsideMutex inside(mu);
  real(mu);
}
void _ZN4absl7debian35Mutex10ReaderLockEv(void* mu) {
  KVPOOL_REAL(void (*)(void*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(mu);
  Locked(mu, kReadLock);
}
void _ZN4absl7debian35Mutex12ReaderUnlockEv(void* mu) {
  KVPOOL_REAL(void (*)(void*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  Unlocking(mu, kReadLock);
  InsideMutex inside(mu);
  real(mu);
}
bool _ZN4absl7debian35Mutex7TryLockEv(void* mu) {
  KVPOOL_REAL(bool (*)(void*), "_ZN4absl7debian35Mutex7TryLockEv");
  const bool ok = real(mu);
  if (Tsan()) {
    __tsan_mutex_pre_lock(mu, kTryLock);
    __tsan_mutex_post_lock(mu, kTryLock | (ok ? 0 : kTryLockFailed), 0);
  }
  return ok;
}
bool _ZN4absl7debian35Mutex13ReaderTryLockEv(void* mu) {
  KVPOOL_REAL(bool (*)(void*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool ok = real(mu);
  if (Tsan()) {
    __tsan_mutex_pre_lock(mu, kReadLock | kTryLock);
    __tsan_mutex_post_lock(mu, kReadLock | kTryLock | (ok ? 0 : kTryLockFailed), 0);
  }
  return ok;
}
void _ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE(void* mu, const void* cond) {
  KVPOOL_REAL(void (*)(void*, const void*), "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  {
    InsideMutex inside(mu);
    real(mu, cond);
  }
  Locked(mu, 0);
}
// The *LockWhen* calls return holding the mutex, whether or not the condition became true.
#define KVPOOL_LOCK_WHEN(name, flags)                                                   \
  bool name(void* mu, const void* cond, Pair d) {                                       \
    KVPOOL_REAL(bool (*)(void*, const void*, Pair), #name);                             \
    bool ok;                                                                            \
    {                                                                                   \
      InsideMutex inside(mu);                                                           \
      ok = real(mu, cond, d);                                                           \
    }                                                                                   \
    Locked(mu, flags);                                                                  \
    return ok;                                                                          \
  }
KVPOOL_LOCK_WHEN(_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE, 0)
KVPOOL_LOCK_WHEN(_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE, 0)
KVPOOL_LOCK_WHEN(_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE,
                 kReadLock)
KVPOOL_LOCK_WHEN(_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE,
                 kReadLock)
void _ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE(void* mu, const void* cond) {
  KVPOOL_REAL(void (*)(void*, const void*),
              "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  {
    InsideMutex inside(mu);
    real(mu, cond);
  }
  Locked(mu, kReadLock);
}
bool _ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE(void* mu,
                                                                          const void* cond,
                                                                          Pair t) {
  KVPOOL_REAL(bool (*)(void*, const void*, Pair),
              "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Unlocking(mu, 0);
  bool ok;
  {
    InsideMutex inside(mu);
    ok = real(mu, cond, t);
  }
  Locked(mu, 0);
  return ok;
}
// Await releases the mutex while it waits and holds it again when it returns.
void _ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE(void* mu, const void* cond) {
  KVPOOL_REAL(void (*)(void*, const void*), "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  Unlocking(mu, 0);
  {
    InsideMutex inside(mu);
    real(mu, cond);
  }
  Locked(mu, 0);
}
bool _ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE(void* mu,
                                                                             const void* cond,
                                                                             Pair d) {
  KVPOOL_REAL(bool (*)(void*, const void*, Pair),
              "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Unlocking(mu, 0);
  bool ok;
  {
    InsideMutex inside(mu);
    ok = real(mu, cond, d);
  }
  Locked(mu, 0);
  return ok;
}

// ---- absl::Condition: evaluated under the mutex of the call it runs in (see the top) -------
bool _ZNK4absl7debian39Condition4EvalEv(const void* cond) {
  KVPOOL_REAL(bool (*)(const void*), "_ZNK4absl7debian39Condition4EvalEv");
  void* mu = t_inside_mu;
  if (mu == nullptr || !Tsan()) return real(cond);
  Locked(mu, kReadLock);
  const bool result = real(cond);
  Unlocking(mu, kReadLock);
  return result;
}

// ---- absl::CondVar: Wait releases the mutex and holds it again when it returns ------------
void _ZN4absl7debian37CondVar4WaitEPNS0_5MutexE(void* cv, void* mu) {
  KVPOOL_REAL(void (*)(void*, void*), "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  Unlocking(mu, 0);
  real(cv, mu);
  Locked(mu, 0);
}
bool _ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE(void* cv, void* mu,
                                                                          Pair d) {
  KVPOOL_REAL(bool (*)(void*, void*, Pair),
              "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Unlocking(mu, 0);
  const bool timed_out = real(cv, mu, d);
  Locked(mu, 0);
  return timed_out;
}
bool _ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE(void* cv, void* mu,
                                                                       Pair t) {
  KVPOOL_REAL(bool (*)(void*, void*, Pair),
              "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Unlocking(mu, 0);
  const bool timed_out = real(cv, mu, t);
  Locked(mu, 0);
  return timed_out;
}

// ---- absl::Notification ---------------------------------------------------------------------
// Layout: { absl::Mutex mutex_ (8 bytes); std::atomic<bool> notified_yet_; }. The inline
// HasBeenNotified() is an acquire load of notified_yet_ in our (instrumented) code, so Notify
// also releases on that address.
void _ZN4absl7debian312Notification6NotifyEv(void* n) {
  KVPOOL_REAL(void (*)(void*), "_ZN4absl7debian312Notification6NotifyEv");
  if (Tsan()) {
    __tsan_release(n);
    __tsan_release(static_cast<char*>(n) + 8);
  }
  real(n);
}
void _ZNK4absl7debian312Notification19WaitForNotificationEv(void* n) {
  KVPOOL_REAL(void (*)(void*), "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  real(n);
  if (Tsan()) __tsan_acquire(n);
}
bool _ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE(void* n,
                                                                                    Pair d) {
  KVPOOL_REAL(bool (*)(void*, Pair),
              "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = real(n, d);
  if (notified && Tsan()) __tsan_acquire(n);
  return notified;
}

}  // extern "C"
