#include "thread_pool.h"

#include <algorithm>
#include <map>

namespace edgesep {

ThreadPool::ThreadPool(int threads) : shares_(threads > 0 ? threads : 1) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back(&ThreadPool::worker, this, i);
}

std::shared_ptr<ThreadPool> ThreadPool::shared(int threads) {
  static std::mutex mu;
  static std::map<int, std::weak_ptr<ThreadPool>> pools;
  std::lock_guard<std::mutex> lock(mu);
  std::shared_ptr<ThreadPool> p = pools[threads].lock();
  if (!p) {
    p = std::make_shared<ThreadPool>(threads);
    pools[threads] = p;
  }
  return p;
}

namespace {
inline void pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

std::atomic<int> g_runs{0};  // plan runs going on in the process
ThreadPool& caller_only() {
  static ThreadPool pool(1);  // no workers: run() calls fn inline, with no shared state
  return pool;
}
}  // namespace

ThreadPool::Claim::Claim(ThreadPool& pool) : pool_(pool), use_(&caller_only()) {
  if (g_runs.fetch_add(1) == 0 && pool.claimed_.try_lock()) use_ = &pool;
}

ThreadPool::Claim::~Claim() {
  if (use_ == &pool_) pool_.claimed_.unlock();
  g_runs.fetch_sub(1);
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(mu_);  // so that no worker is between its check and its wait
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain(int thread) {
  const int n = (int)shares_.size();
  for (int k = 0; k < n; ++k) {  // its own share first, then the others'
    Share& s = shares_[(thread + k) % n];
    for (int task = s.next.fetch_add(1); task < s.end; task = s.next.fetch_add(1)) (*job_)(task, thread);
  }
}

void ThreadPool::run(int n, const std::function<void(int, int)>& fn, bool parallel) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1 || !parallel) {
    for (int i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  // The hand-off takes no lock while the workers spin (a layer follows the last within microseconds):
  // the job is published by the generation's increment, and the mutex is taken only to wake a worker
  // that went to sleep (sleepers_, read after the increment; a worker counts itself before its last
  // look at the generation, so one of the two sees the other: both sides' first steps are
  // read-modify-writes, which order the load after them on every target).
  job_ = &fn;
  const int shares = (int)shares_.size();
  for (int i = 0; i < shares; ++i) {
    shares_[i].next.store((int)((int64_t)n * i / shares), std::memory_order_relaxed);
    shares_[i].end = (int)((int64_t)n * (i + 1) / shares);
  }
  const unsigned gen = generation_.load() + 1;
  open_.store(gen);
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }
    wake_.notify_all();
  }
  drain(0);
  // Every task is taken. Close the job to workers that have not joined it, and wait only for those
  // inside it (fn, a reference, must outlive every use). A worker that the OS has not run since the job
  // was published (a busy machine: another process on its core) is not waited for: the caller has
  // done its share, where waiting for it to wake and find nothing left made a 35 us conv take 1.1 ms
  // beside two busy processes. The close and a worker's join are a Dekker pair (each a
  // read-modify-write or sequentially consistent access, then a load of the other's): either the
  // worker sees the job closed and leaves it, or the caller sees it inside.
  open_.exchange(0);
  // Spin first (they are usually a few microseconds behind; a futex wake-up costs more than that).
  for (int spin = 0; spin < 20000 && inside_.load() != 0; ++spin) pause();
  if (inside_.load() != 0) {
    std::unique_lock<std::mutex> lock(mu_);
    // An exchange, not a store: a read-modify-write orders it before the check of inside_ below on
    // every target (under qemu-user on x86, an aarch64 store-release then load-acquire was not, and
    // the caller slept through the last worker's exit: a hang in CI).
    caller_sleeps_.exchange(true);
    done_.wait(lock, [&] { return inside_.load() == 0; });
    caller_sleeps_.store(false);
  }
}

void ThreadPool::run_range(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, bool parallel) {
  if (n <= 0) return;
  const int64_t parts = parallel ? std::min<int64_t>(n, (int64_t)kTasksPerThread * size()) : 1, per = (n + parts - 1) / parts;
  run((int)((n + per - 1) / per), [&](int t, int thread) { fn(t * per, std::min(n, (t + 1) * per), thread); },
      parallel);
}

void ThreadPool::worker(int index) {
  unsigned seen = 0;
  for (;;) {
    // Spin briefly before sleeping: consecutive layers follow each other within microseconds.
    for (int spin = 0; spin < 20000 && generation_.load(std::memory_order_acquire) == seen; ++spin) pause();
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    inside_.fetch_add(1);
    if (open_.load() == seen) drain(index);  // else the job is over (or a newer one is out: next loop)
    if (inside_.fetch_sub(1) == 1 && caller_sleeps_.load()) {
      { std::lock_guard<std::mutex> lock(mu_); }  // the caller is in its wait, not before it
      done_.notify_one();
    }
  }
}

}  // namespace edgesep
