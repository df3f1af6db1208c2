// A fixed pool of worker threads that runs one data-parallel job at a time.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace edgesep {

class ThreadPool {
 public:
  // `threads` counts the calling thread: a pool of 1 runs everything inline.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return (int)workers_.size() + 1; }

  // Tasks to cut a layer into per thread, so that a layer's last task leaves one thread idle for little
  // of it (with four, mobilenet_v2 at two threads took 1.05x the time); run_range and the NHWC convs.
  static constexpr int kTasksPerThread = 8;

  // The process's pool of `threads`: one per size, shared by every plan that asks for it, so that
  // several Models in one process do not each keep (and spin) their own workers.
  static std::shared_ptr<ThreadPool> shared(int threads);

  // The pool one plan run uses, held for the run: `pool` itself where no other run in the process is
  // going on, else a pool without workers (the run stays on its caller's thread). Concurrent runs then
  // add one busy thread each, never a pool's spinning workers on top of another's: four Models run
  // from four threads keep the cores busy instead of oversubscribing them.
  class Claim {
   public:
    explicit Claim(ThreadPool& pool);
    ~Claim();
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;
    ThreadPool& pool() const { return *use_; }

   private:
    ThreadPool& pool_;
    ThreadPool* use_;
  };

  // Calls fn(task, thread) for every task in [0, n), thread in [0, size()); returns when all are done.
  // Thread i first takes the i-th contiguous share of the tasks, in order, then takes what is left of
  // the others' shares: a layer's tasks cover the same part of an image on the same thread as the
  // layer before did (whose output is then in that core's cache, not the other's), and uneven tasks
  // still balance. parallel=false runs them all inline (for work too small to pay for waking the
  // workers). Not reentrant.
  void run(int n, const std::function<void(int, int)>& fn, bool parallel = true);

  // Calls fn(begin, end, thread) over contiguous slices of [0, n): about four per thread, so that
  // small items (a channel plane, a row) do not each pay for a hand-off between threads.
  void run_range(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, bool parallel = true);

 private:
  void worker(int index);
  void drain(int thread);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int, int)>* job_ = nullptr;
  struct alignas(64) Share {  // one thread's share of a job's tasks: [next, end), taken from the front
    std::atomic<int> next{0};
    int end = 0;
  };
  std::vector<Share> shares_;
  std::atomic<unsigned> generation_{0};  // one more per job (and at shutdown)
  std::atomic<unsigned> open_{0};        // the job's generation while workers may join it, else 0
  std::atomic<int> inside_{0};           // workers that joined the current job and have not left it
  std::atomic<int> sleepers_{0};         // workers waiting on wake_
  std::atomic<bool> caller_sleeps_{false};  // the caller is waiting on done_
  std::atomic<bool> stop_{false};
  std::mutex claimed_;  // held by the run that uses the workers (Claim)
};

}  // namespace edgesep
