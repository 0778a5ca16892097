// The recurrences of the standard cells (LSTM, GRU with the reset gate after the matmul,
// Elman RNN) on the CPU, forward and backward, as XLA FFI handlers (seqjax.kernels.cpu).
//
// XLA's CPU runtime runs a loop body's ops one after another on one thread, so the
// recurrent matmul of a step, [B, h] x [h, G h], uses one core. Here a layer's whole
// recurrence is one call that cuts the hidden units into lanes (class Lanes) and shares
// the lanes of every step out among threads: a lane's gate columns need no other lane's
// results, so a step needs one synchronisation (the next step's matmul reads every unit's
// h). Per step and lane: one matmul of [x_t, h] against the lane's columns of [W_i; W_h]
// (two for the GRU, whose reset gate multiplies only the recurrent part), in register
// blocks of 6 rows by 2 vectors over weight panels packed once per call (matmul, tile),
// then the cell's gate arithmetic on vectors of units (struct Lstm, Gru, Elman). The
// backward pass runs here too, from the residuals the training forward stores: per step
// the carry's and the input's cotangents, and every 256 rows each lane's weight gradients
// as block matmuls. A step past its sequence's length (`valid` 0) keeps the carry and
// outputs zeros; its backward passes the carry's cotangents through.
//
// tanh is a rational function (relative error below 4e-7 in float32, see tanh_approx),
// sigmoid(x) = tanh(x / 2) / 2 + 1 / 2, as in seqjax.kernels.fused.

#include <Python.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

// jaxlib's FFI headers warn under -Wall (always_inline hints, switch returns): not ours.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wattributes"
#pragma GCC diagnostic ignored "-Wreturn-type"
#include "xla/ffi/api/ffi.h"
#pragma GCC diagnostic pop

namespace ffi = xla::ffi;

namespace {

// ------------------------------------------------------------------------ vectors

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));
constexpr int64_t kTile = 2 * kLanes;  // columns of a packed panel block
constexpr int64_t kRows = 6;           // rows of a register block

inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// The gate arithmetic is written once for a float and for a Vec (the loops below run it on
// whole vectors, then on the remaining units one by one).
inline float clamp(float x, float lo, float hi) { return std::min(std::max(x, lo), hi); }
inline Vec clamp(Vec x, float lo, float hi) {
  const Vec l = Vec{} + lo, h = Vec{} + hi;
  x = x < l ? l : x;
  return x > h ? h : x;
}
template <class T>
inline T get(const float* p);
template <>
inline float get<float>(const float* p) { return *p; }
template <>
inline Vec get<Vec>(const float* p) { return load(p); }
inline void put(float* p, float v) { *p = v; }
inline void put(float* p, Vec v) { store(p, v); }

// tanh(x) = x P(x^2) / Q(x^2) on |x| <= 9 (beyond, tanh rounds to +-1 in float32): a
// rational fit of degree 4 over 4 in x^2, computed for seqjax by iteratively reweighted
// least squares; its float32 relative error is below 3.5e-7 on [-9, 9].
template <class T>
inline T tanh_approx(T x) {
  x = clamp(x, -9.0f, 9.0f);
  const T s = x * x;
  const T p = (((1.3439319e-08f * s + 2.0672951e-05f) * s + 3.4996110e-03f) * s +
               1.3384470e-01f) * s + 1.0f;
  const T q = (((7.8119933e-07f * s + 3.2921092e-04f) * s + 2.5892457e-02f) * s +
               4.6717793e-01f) * s + 1.0f;
  return clamp(x * p / q, -1.0f, 1.0f);
}

template <class T>
inline T sigmoid_approx(T x) {
  return 0.5f * tanh_approx(0.5f * x) + 0.5f;
}

// Runs f(T{}, j) for j = 0, kLanes, ... with T = Vec, then for the rest with T = float.
template <class F>
inline void for_units(int64_t n, F f) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) f(Vec{}, j);
  for (; j < n; ++j) f(0.0f, j);
}

// ------------------------------------------------------------------------ matmul

// One operand of a matmul: element (r, kk) of a [rows, k] matrix at a[r * rs + kk * ks]
// (rs = row length, ks = 1 for a row-major matrix; rs = 1, ks = row length for the
// transpose of one).
struct Operand {
  const float* a;
  int64_t rs, ks, k;
};

Operand rows_from(Operand op, int64_t r) { return {op.a + r * op.rs, op.rs, op.ks, op.k}; }

// c[r, :kTile] (+)= sum_k [x, y][r, k] p[k, :kTile] for R rows of the operands x and y side
// by side (x's k rows of the panel first): a step's input projection and recurrent matmul
// accumulate in the same registers.
template <int R>
inline void tile(Operand x, Operand y, const float* __restrict p, float* __restrict c,
                 int64_t ldc, bool accumulate) {
  Vec acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) {
    acc0[r] = accumulate ? load(c + r * ldc) : Vec{};
    acc1[r] = accumulate ? load(c + r * ldc + kLanes) : Vec{};
  }
  for (const Operand& op : {x, y}) {
    const float* __restrict a = op.a;
    for (int64_t kk = 0; kk < op.k; ++kk, p += kTile) {
      const Vec w0 = load(p);
      const Vec w1 = load(p + kLanes);
      const float* __restrict ak = a + kk * op.ks;
      for (int r = 0; r < R; ++r) {
        const float s = ak[r * op.rs];
        acc0[r] += s * w0;
        acc1[r] += s * w1;
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    store(c + r * ldc, acc0[r]);
    store(c + r * ldc + kLanes, acc1[r]);
  }
}

// A packed panel: `blocks` blocks of [k, kTile] columns, each contiguous, so that a block
// stays in L1 while every row block of the operands passes over it.
struct Panel {
  std::vector<float> data;
  int64_t k = 0, blocks = 0;
  int64_t width() const { return blocks * kTile; }
};

// Packs value(kk, q) for kk < k, q < n into `panel`; columns zero-padded to whole blocks.
template <class Value>
void pack_into(Panel& panel, int64_t k, int64_t n, Value value) {
  panel.k = k;
  panel.blocks = round_up(n, kTile) / kTile;
  panel.data.resize(panel.blocks * k * kTile);
  for (int64_t cb = 0; cb < panel.blocks; ++cb) {
    for (int64_t kk = 0; kk < k; ++kk) {
      float* dst = panel.data.data() + (cb * k + kk) * kTile;
      for (int64_t x = 0; x < kTile; ++x) {
        const int64_t q = cb * kTile + x;
        dst[x] = q < n ? value(kk, q) : 0.0f;
      }
    }
  }
}

template <class Value>
Panel pack(int64_t k, int64_t n, Value value) {
  Panel panel;
  pack_into(panel, k, n, value);
  return panel;
}

// c[rows, panel.width()] (+)= [x, y][rows, :] @ panel, with x.k + y.k == panel.k and c's
// row stride ldc.
void matmul(Operand x, Operand y, int64_t rows, const Panel& panel, float* c, int64_t ldc,
            bool accumulate = false) {
  for (int64_t cb = 0; cb < panel.blocks; ++cb) {
    const float* p = panel.data.data() + cb * panel.k * kTile;
    int64_t r = 0;
    for (; r + kRows <= rows; r += kRows)
      tile<kRows>(rows_from(x, r), rows_from(y, r), p, c + r * ldc + cb * kTile, ldc,
                  accumulate);
    const Operand xr = rows_from(x, r), yr = rows_from(y, r);
    float* cr = c + r * ldc + cb * kTile;
    switch (rows - r) {
      case 5: tile<5>(xr, yr, p, cr, ldc, accumulate); break;
      case 4: tile<4>(xr, yr, p, cr, ldc, accumulate); break;
      case 3: tile<3>(xr, yr, p, cr, ldc, accumulate); break;
      case 2: tile<2>(xr, yr, p, cr, ldc, accumulate); break;
      case 1: tile<1>(xr, yr, p, cr, ldc, accumulate); break;
      default: break;
    }
  }
}

// ------------------------------------------------------------------------ memory

// XLA allocates a large output buffer anew on every call (glibc maps it fresh), so the
// kernel's first writes fault in every page; 4 KiB at a time, those faults cost as much as
// the arithmetic (measured: 19k faults, half of an LSTM train step at 16/512/64/128).
// Transparent huge pages make it one fault per 2 MiB, as PyTorch's CPU allocator asks for
// its large buffers; without THP (or with THP "never") the call does nothing.
void prefer_huge_pages(void* data, size_t bytes) {
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  if (bytes < 2 * kHuge) return;
  const uintptr_t start = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > start) madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE);
#endif
}

template <class... Buffers>
void prefer_huge_pages_all(Buffers&... buffers) {
  (prefer_huge_pages(buffers->untyped_data(), buffers->size_bytes()), ...);
}

// ------------------------------------------------------------------------ threads

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  const int n = std::atoi(v);
  return n > 0 ? n : fallback;
}

// The CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota (a
// container started with --cpus=2 on a larger host).
int cpu_count() {
  int n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = std::max(1, CPU_COUNT(&set));
  if (FILE* f = std::fopen("/sys/fs/cgroup/cpu.max", "r")) {
    long long quota = 0, period = 0;
    if (std::fscanf(f, "%lld %lld", &quota, &period) == 2 && quota > 0 && period > 0)
      n = std::max(1, std::min<int>(n, static_cast<int>((quota + period - 1) / period)));
    std::fclose(f);  // "max 100000" (no quota) reads no number first, and changes nothing
  }
  return n;
}

// Spins before a waiting thread yields its core: about 50 us, several lanes' worth at the
// benchmark's sizes, little when the thread it waits for was preempted.
constexpr int kSpins = 2000;

// The units of a layer cut into lanes, shared out among the threads phase by phase (a
// phase: one step's matmuls and gate arithmetic, or the set-up, or the final copies). A
// thread first takes the lanes of its own segment, the same units every phase so that
// their weights stay in its cache, then helps with the other segments' lanes, and waits
// until every lane of the phase is done. A thread that runs slower for a while (a core
// shared with another process) or starts late thus holds the others up by at most one
// lane, where a fixed split of the units made the faster thread wait at every step.
// Counters only grow (phase p's claims of segment s are p * len(s) ... (p + 1) * len(s)),
// so nothing is reset between phases.
class Lanes {
 public:
  static constexpr int kMaxSegments = 8;

  Lanes(int64_t lanes, int threads) : lanes_(lanes), segments_(std::max(1, threads)) {}

  int64_t count() const { return lanes_; }

  // Runs work(lane) for lanes of phase p until none is left, then waits for the others.
  template <class Work>
  void phase(int64_t p, int self, Work&& work) {
    for (int k = 0; k < segments_ && !failed(); ++k) {
      const int s = (self + k) % segments_;
      const int64_t first = start(s), len = start(s + 1) - first, end = (p + 1) * len;
      std::atomic<int64_t>& next = next_[s].value;
      for (int64_t v = next.load(std::memory_order_relaxed); v < end && !failed();) {
        if (next.compare_exchange_weak(v, v + 1, std::memory_order_relaxed)) {
          work(first + v - p * len);
          done_.fetch_add(1, std::memory_order_release);
          v = next.load(std::memory_order_relaxed);
        }
      }
    }
    const int64_t target = (p + 1) * lanes_;
    for (int spins = 0; done_.load(std::memory_order_acquire) < target && !failed(); ++spins) {
      if (spins < kSpins) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }

  // A thread failed: the others stop waiting for its lanes (and take no more).
  void fail() { failed_.store(true, std::memory_order_relaxed); }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }

 private:
  int64_t start(int s) const { return lanes_ * s / segments_; }

  struct alignas(64) Counter {
    std::atomic<int64_t> value{0};
  };
  const int64_t lanes_;
  const int segments_;
  Counter next_[kMaxSegments];
  alignas(64) std::atomic<int64_t> done_{0};
  std::atomic<bool> failed_{false};
};

// Persistent worker threads (one call at a time; a concurrent call runs on one thread).
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();  // never destroyed: workers may outlive static teardown
    return *pool;
  }

  // Runs fn(0), ..., fn(n - 1) with the caller as thread 0; returns after all have.
  void run(int n, const std::function<void(int)>& fn) {
    if (n <= 1) {
      fn(0);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int>(workers_.size()) < n - 1) {
        const int index = static_cast<int>(workers_.size()) + 1;
        workers_.emplace_back([this, index] { loop(index); });
      }
      job_ = &fn;
      threads_ = n;
      pending_.store(n - 1, std::memory_order_release);
      ++generation_;
    }
    wake_.notify_all();
    fn(0);
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < kSpins) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }

  // How many threads a call may use now: 1 when another call holds the pool, or in a
  // process forked after the workers started (they do not exist there).
  int acquire(int want) {
    want = std::min(want, max_threads_);
    if (want <= 1 || getpid() != pid_ || !busy_.try_lock()) return 1;
    return want;
  }
  void release(int granted) {
    if (granted > 1) busy_.unlock();
  }
  int max_threads() const { return max_threads_; }

 private:
  Pool()
      : pid_(getpid()),
        max_threads_(std::min(env_int("SEQJAX_NUM_THREADS", cpu_count()), Lanes::kMaxSegments)) {}

  void loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        job = index < threads_ ? job_ : nullptr;
      }
      if (job != nullptr) {
        (*job)(index);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  const pid_t pid_;
  const int max_threads_;
  std::mutex busy_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  int threads_ = 0;
  uint64_t generation_ = 0;
  std::atomic<int> pending_{0};
};

// Threads for a layer: enough work per step and per thread to pay for a synchronisation
// a step.
int wanted_threads(int64_t batch, int64_t inputs, int64_t hidden, int64_t groups) {
  const int64_t macs = batch * (inputs + hidden) * groups * hidden;  // one step's matmuls
  const int64_t n = std::min<int64_t>(hidden / 8, macs / 32768);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n, Pool::get().max_threads())));
}

// Lanes of a layer: 32 units or more each (a lane's share of the inputs' gradient columns
// then fills a register block at the benchmark's sizes), at most 8; not a function of the
// threads, so that the lanes, hence the numbers, are the same on any machine.
int64_t lane_count(int64_t hidden) { return std::clamp<int64_t>(hidden / 32, 1, 8); }

// Units [j0, j0 + n) of part `index` of `parts` over `hidden` units.
struct Range {
  int64_t j0, n;
  // The layer's gate column of column q of these units' gate groups (group-major: the
  // units' first gate, then their second, ...), in a layer of `hidden` units.
  int64_t column(int64_t q, int64_t hidden) const { return (q / n) * hidden + j0 + q % n; }
};
Range units(int64_t index, int64_t parts, int64_t hidden) {
  const int64_t base = hidden / parts, extra = hidden % parts;
  const int64_t j0 = index * base + std::min<int64_t>(index, extra);
  return {j0, base + (index < extra ? 1 : 0)};
}

// Runs body(index) on `threads` threads of the pool, held for the call. An exception in a
// thread stops the lanes (no thread waits for it) and its message becomes the call's error.
template <class Body>
std::string run_threads(int threads, Lanes& lanes, Body body) {
  struct Lease {
    int n;
    ~Lease() { Pool::get().release(n); }
  } lease{threads};
  std::mutex mutex;
  std::string error;
  Pool::get().run(threads, [&](int index) {
    try {
      body(index);
    } catch (const std::exception& e) {
      lanes.fail();
      std::lock_guard<std::mutex> lock(mutex);
      if (error.empty()) error = e.what();
    } catch (...) {
      lanes.fail();
      std::lock_guard<std::mutex> lock(mutex);
      if (error.empty()) error = "unknown exception";
    }
  });
  return error;
}

// ------------------------------------------------------------------------ cells

// A cell is its step on a vector (or a float) of units j, j + 1, ... of one batch row, and
// that step's backward. Pointers point at the thread's first unit; arrays local to the
// thread (pre-activations z, zh and their cotangents dx, dr) hold its gate columns
// group-major with stride n, the others (biases, residuals) stride h.

struct Fwd {
  const float* z;   // pre-activations: x W_i, plus h W_h where the cell sums the two
  const float* zh;  // h W_h alone (GRU)
  const float* b;   // bias of the x side [groups h]
  const float* bh;  // bias of the h side's last group (GRU's b_hn) [h]
  const float* h;   // h before the step
  float* c;         // the LSTM's cell state, updated in place
  float* h_new;     // h after the step
  float* y;         // the step's output
  float* res;       // what the backward pass needs (nullptr in inference)
  int64_t n, hid;
};

struct Bwd {
  const float* res;  // the forward's residuals
  const float* h;    // h before the step
  const float* y;    // the step's output
  const float* dy;   // its cotangent
  float* dh;         // in: cotangent of h after the step; out: its direct part before it
  float* dc;         // the LSTM's cell-state cotangent, updated in place
  float* dx;         // cotangent of the x side's pre-activations (dW_i, db, dx)
  float* dr;         // of the h side's (dW_h, dh through W_h^T; b_hn): dx where they agree
  int64_t n, hid;
};

// LSTM (Hochreiter and Schmidhuber 1997; Gers et al. 2000), gates i, f, g, o:
//   i, f, o = sigmoid(.), g = tanh(.);  c = f c + i g;  h = o tanh(c)
// Residuals: i, f, g, o, c before the step. Backward:
//   dh = dy + dh';  dc = dc' + dh o (1 - tanh(c)^2)
//   d = (dc g i(1-i), dc c_prev f(1-f), dc i (1-g^2), dh tanh(c) o(1-o));  dc' = dc f
struct Lstm {
  static constexpr int kGroups = 4, kResidual = 5;
  static constexpr bool kSummed = true, kCellState = true;

  template <class T>
  static void forward(const Fwd& a, int64_t j) {
    const int64_t n = a.n, h = a.hid;
    const T i = sigmoid_approx(get<T>(a.z + j) + get<T>(a.b + j));
    const T f = sigmoid_approx(get<T>(a.z + n + j) + get<T>(a.b + h + j));
    const T g = tanh_approx(get<T>(a.z + 2 * n + j) + get<T>(a.b + 2 * h + j));
    const T o = sigmoid_approx(get<T>(a.z + 3 * n + j) + get<T>(a.b + 3 * h + j));
    const T c_prev = get<T>(a.c + j);
    const T c = f * c_prev + i * g;
    const T out = o * tanh_approx(c);
    if (a.res != nullptr) {
      put(a.res + j, i);
      put(a.res + h + j, f);
      put(a.res + 2 * h + j, g);
      put(a.res + 3 * h + j, o);
      put(a.res + 4 * h + j, c_prev);
    }
    put(a.c + j, c);
    put(a.h_new + j, out);
    put(a.y + j, out);
  }

  template <class T>
  static void backward(const Bwd& a, int64_t j) {
    const int64_t n = a.n, h = a.hid;
    const T i = get<T>(a.res + j), f = get<T>(a.res + h + j);
    const T g = get<T>(a.res + 2 * h + j), o = get<T>(a.res + 3 * h + j);
    const T c_prev = get<T>(a.res + 4 * h + j);
    const T tc = tanh_approx(f * c_prev + i * g);
    const T dh = get<T>(a.dy + j) + get<T>(a.dh + j);
    const T dc = get<T>(a.dc + j) + dh * o * (1.0f - tc * tc);
    put(a.dx + j, dc * g * i * (1.0f - i));
    put(a.dx + n + j, dc * c_prev * f * (1.0f - f));
    put(a.dx + 2 * n + j, dc * i * (1.0f - g * g));
    put(a.dx + 3 * n + j, dh * tc * o * (1.0f - o));
    put(a.dc + j, dc * f);
    put(a.dh + j, T{} * 0.0f);
  }
};

// GRU (Cho et al. 2014) with the reset gate after the recurrent matmul (PyTorch, cuDNN):
//   r, z = sigmoid(x W_i + b + h W_h);  hn = (h W_h)_n + b_hn;  n = tanh((x W_i + b)_n + r hn)
//   h' = n + z (h - n)
// Residuals: r, z, n, hn. Backward, with dh = dy + dh':
//   dn = dh (1 - z)(1 - n^2);  dr = dn hn r(1-r);  dz = dh (h - n) z(1-z)
//   x side (dr, dz, dn), h side (dr, dz, dn r);  direct dh' = dh z
struct Gru {
  static constexpr int kGroups = 3, kResidual = 4;
  static constexpr bool kSummed = false, kCellState = false;

  template <class T>
  static void forward(const Fwd& a, int64_t j) {
    const int64_t n = a.n, h = a.hid;
    const T r = sigmoid_approx(get<T>(a.z + j) + get<T>(a.b + j) + get<T>(a.zh + j));
    const T z = sigmoid_approx(get<T>(a.z + n + j) + get<T>(a.b + h + j) + get<T>(a.zh + n + j));
    const T hn = get<T>(a.zh + 2 * n + j) + get<T>(a.bh + j);
    const T nn = tanh_approx(get<T>(a.z + 2 * n + j) + get<T>(a.b + 2 * h + j) + r * hn);
    const T out = nn + z * (get<T>(a.h + j) - nn);
    if (a.res != nullptr) {
      put(a.res + j, r);
      put(a.res + h + j, z);
      put(a.res + 2 * h + j, nn);
      put(a.res + 3 * h + j, hn);
    }
    put(a.h_new + j, out);
    put(a.y + j, out);
  }

  template <class T>
  static void backward(const Bwd& a, int64_t j) {
    const int64_t n = a.n, h = a.hid;
    const T r = get<T>(a.res + j), z = get<T>(a.res + h + j);
    const T nn = get<T>(a.res + 2 * h + j), hn = get<T>(a.res + 3 * h + j);
    const T dh = get<T>(a.dy + j) + get<T>(a.dh + j);
    const T d_n = dh * (1.0f - z) * (1.0f - nn * nn);
    const T d_r = d_n * hn * r * (1.0f - r);
    const T d_z = dh * (get<T>(a.h + j) - nn) * z * (1.0f - z);
    put(a.dx + j, d_r);
    put(a.dx + n + j, d_z);
    put(a.dx + 2 * n + j, d_n);
    put(a.dr + j, d_r);
    put(a.dr + n + j, d_z);
    put(a.dr + 2 * n + j, d_n * r);
    put(a.dh + j, dh * z);
  }
};

// Elman RNN (Elman 1990): h' = tanh(.) or relu(.); no residuals (the derivative comes from
// the output): d = (dy + dh') (1 - h'^2), or where h' > 0.
inline float relu(float x) { return std::max(x, 0.0f); }
inline Vec relu(Vec x) { return x < Vec{} ? Vec{} : x; }  // NaN stays NaN, as std::max
inline float where_positive(float y, float v) { return y > 0.0f ? v : 0.0f; }
inline Vec where_positive(Vec y, Vec v) { return y > Vec{} ? v : Vec{}; }

template <bool kRelu>
struct Elman {
  static constexpr int kGroups = 1, kResidual = 0;
  static constexpr bool kSummed = true, kCellState = false;

  template <class T>
  static void forward(const Fwd& a, int64_t j) {
    const T pre = get<T>(a.z + j) + get<T>(a.b + j);
    const T out = kRelu ? relu(pre) : tanh_approx(pre);
    put(a.h_new + j, out);
    put(a.y + j, out);
  }

  template <class T>
  static void backward(const Bwd& a, int64_t j) {
    const T y = get<T>(a.y + j);
    const T dh = get<T>(a.dy + j) + get<T>(a.dh + j);
    put(a.dx + j, kRelu ? where_positive(y, dh) : dh * (1.0f - y * y));
    put(a.dh + j, T{} * 0.0f);
  }
};

// ------------------------------------------------------------------------ drivers

struct Shapes {
  int64_t t, b, d, h;
};

// Where row (t, b) of the inputs, outputs and their cotangents is: [t, B, .] time-major,
// [B, t, .] batch-major (the user's layout: no transpose on either side of the call).
struct Rows {
  int64_t t, b;
  bool batch_major;
  int64_t operator()(int64_t step, int64_t row) const {
    return batch_major ? row * t + step : step * b + row;
  }
  int64_t stride() const { return batch_major ? t : 1; }  // between batch rows, in rows
};

struct Weights {
  const float *w_i, *w_h, *b, *bh;
};

// Runs the cell over time. Phase 0 packs each lane's weights and copies its initial carry;
// phase 1 + s is step s (each lane: one matmul of [x_t, h] against its gate columns, then
// its gate arithmetic); the last phase copies the final carry out. The carry h lives in a
// double buffer (a step reads one and writes the other, so a phase's end is the only
// synchronisation a step needs); the LSTM's c is owned by units, hence by lanes.
template <class Cell>
std::string forward(const Shapes& s, const Rows& rows, const float* x, const Weights& w,
                    const float* h0, const float* c0, const uint8_t* valid, bool reverse,
                    float* ys, float* h_n, float* c_n, float* res) {
  constexpr int G = Cell::kGroups;
  const int64_t t_len = s.t, batch = s.b, d = s.d, hid = s.h, gh = G * hid;
  const int64_t xs = rows.stride() * d;
  std::vector<float> hbuf(2 * batch * hid), c(Cell::kCellState ? batch * hid : 0);
  const int threads = Pool::get().acquire(
      std::min<int>(wanted_threads(batch, d, hid, G), static_cast<int>(lane_count(hid))));
  Lanes lanes(lane_count(hid), threads);
  std::vector<Panel> px(lanes.count()), ph(lanes.count());
  const int64_t widest = round_up(G * units(0, lanes.count(), hid).n, kTile);

  auto setup = [&](int64_t lane) {
    const Range r = units(lane, lanes.count(), hid);
    const int64_t j0 = r.j0, n = r.n;
    // Columns: the lane's units' gate groups; rows: W_i's, then W_h's where the cell sums
    // the two sides (one matmul a step), else two panels.
    const int64_t kh = Cell::kSummed ? hid : 0;
    px[lane] = pack(d + kh, G * n, [&](int64_t kk, int64_t q) {
      return kk < d ? w.w_i[kk * gh + r.column(q, hid)] : w.w_h[(kk - d) * gh + r.column(q, hid)];
    });
    if (!Cell::kSummed)
      ph[lane] = pack(hid, G * n,
                      [&](int64_t kk, int64_t q) { return w.w_h[kk * gh + r.column(q, hid)]; });
    for (int64_t b = 0; b < batch; ++b) {
      std::memcpy(&hbuf[b * hid + j0], h0 + b * hid + j0, n * sizeof(float));
      if (Cell::kCellState) std::memcpy(&c[b * hid + j0], c0 + b * hid + j0, n * sizeof(float));
    }
  };

  return run_threads(threads, lanes, [&](int self) {
    std::vector<float> z(batch * widest), zh(Cell::kSummed ? 0 : batch * widest);
    lanes.phase(0, self, setup);
    for (int64_t step = 0; step < t_len; ++step) {
      const int64_t t = reverse ? t_len - 1 - step : step;
      const float* hcur = hbuf.data() + (step % 2) * batch * hid;
      float* hnext = hbuf.data() + ((step + 1) % 2) * batch * hid;
      lanes.phase(1 + step, self, [&](int64_t lane) {
        const Range r = units(lane, lanes.count(), hid);
        const int64_t j0 = r.j0, n = r.n, ldz = px[lane].width();
        const Operand xt{x + rows(t, 0) * d, xs, 1, d}, ht{hcur, hid, 1, hid};
        if (Cell::kSummed) {
          matmul(xt, ht, batch, px[lane], z.data(), ldz);
        } else {
          matmul(xt, {nullptr, 0, 0, 0}, batch, px[lane], z.data(), ldz);
          matmul(ht, {nullptr, 0, 0, 0}, batch, ph[lane], zh.data(), ldz);
        }
        for (int64_t b = 0; b < batch; ++b) {
          float* y = ys + rows(t, b) * hid + j0;
          float* rs = res == nullptr ? nullptr : res + (t * batch + b) * Cell::kResidual * hid + j0;
          if (!valid[t * batch + b]) {  // past the length: carry kept, output zero
            std::memcpy(hnext + b * hid + j0, hcur + b * hid + j0, n * sizeof(float));
            std::memset(y, 0, n * sizeof(float));
            for (int k = 0; rs != nullptr && k < Cell::kResidual; ++k)
              std::memset(rs + k * hid, 0, n * sizeof(float));
            continue;
          }
          const Fwd a{z.data() + b * ldz,
                      Cell::kSummed ? nullptr : zh.data() + b * ldz,
                      w.b + j0,
                      w.bh + j0,
                      hcur + b * hid + j0,
                      Cell::kCellState ? c.data() + b * hid + j0 : nullptr,
                      hnext + b * hid + j0,
                      y,
                      rs,
                      n,
                      hid};
          for_units(n, [&](auto tag, int64_t j) { Cell::template forward<decltype(tag)>(a, j); });
        }
      });
    }
    const float* hlast = hbuf.data() + (t_len % 2) * batch * hid;
    lanes.phase(1 + t_len, self, [&](int64_t lane) {
      const Range r = units(lane, lanes.count(), hid);
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t at = b * hid + r.j0;
        std::memcpy(h_n + at, hlast + at, r.n * sizeof(float));
        if (Cell::kCellState) {
          std::memcpy(c_n + at, c.data() + at, r.n * sizeof(float));
        } else {
          std::memset(c_n + at, 0, r.n * sizeof(float));
        }
      }
    });
  });
}

struct Grads {
  float *dx, *dw_i, *dw_h, *db, *dbh, *dh0, *dc0;
};

// A lane's part of the backward pass: its weights' transposes, and its gate columns'
// cotangents over the rows of the current block with their weight-gradient accumulators.
struct BackLane {
  Panel w_h_t, w_i_t;
  std::vector<float> dx_blk, dr_blk, db, dbh, dw_i, dw_h;
  int64_t ldw = 0;
};

// The whole backward pass but the loss: the gradients of x, of the weights and biases and
// of the initial carry, from the forward's residuals and outputs. A step has two parts per
// lane: (a) the cell's backward on the lane's units, into the step's cotangents of all
// units (d_x, d_r [B, G h]); (b) the lane's dh (d_r times its rows of W_h^T) and its share
// of dx (d_x times W_i^T), and, every `block` steps, its gate columns' weight gradients as
// the matmuls X^T [d, rows] d_x and H_prev^T [h, rows] d_r over the block's rows. (b) reads
// every lane's (a), and the next step's (a) needs only the lane's own (b), so phase k runs
// (b) of step k - 1 then (a) of step k for each lane: one synchronisation a step. What one
// phase writes and another lane of the same phase reads (the step's cotangents, the
// block's rows) is kept twice, by the parity of the step or of the block.
//
// h_prev (the h a step started from) is the output of the step run before it if that step
// was within its length, else h0: true where `valid` holds a prefix of each sequence's steps,
// as lengths make it.
template <class Cell>
std::string backward(const Shapes& s, const Rows& rows, const float* x, const Weights& w,
                     const float* ys, const float* h0, const float* res, const float* dys,
                     const float* dh_n, const float* dc_n, const uint8_t* valid, bool reverse,
                     Grads out) {
  constexpr int G = Cell::kGroups;
  constexpr bool kSummed = Cell::kSummed;
  const int64_t t_len = s.t, batch = s.b, d = s.d, hid = s.h, gh = G * hid;
  const int64_t block = std::max<int64_t>(1, 256 / std::max<int64_t>(batch, 1));
  std::vector<float> dh(batch * hid), dc(batch * hid);
  std::vector<float> a_x(2 * block * batch * d), a_h(2 * block * batch * hid);
  std::vector<float> shared_x(2 * batch * gh), shared_r(kSummed ? 0 : 2 * batch * gh);
  const int threads = Pool::get().acquire(
      std::min<int>(wanted_threads(batch, d, hid, G), static_cast<int>(lane_count(hid))));
  Lanes lanes(lane_count(hid), threads);
  std::vector<BackLane> back(lanes.count());
  const int64_t widest = units(0, lanes.count(), hid).n, widest_i = units(0, lanes.count(), d).n;

  auto time_of = [&](int64_t step) { return reverse ? step : t_len - 1 - step; };
  auto h_prev = [&](int64_t t, int64_t b) {  // the h step t of row b started from
    const int64_t prev = reverse ? t + 1 : t - 1;
    const bool ok = prev >= 0 && prev < t_len && valid[prev * batch + b];
    return ok ? ys + rows(prev, b) * hid : h0 + b * hid;
  };
  auto block_rows = [&](std::vector<float>& a, int64_t step, int64_t width) {
    return a.data() + ((step / block) % 2) * block * batch * width;
  };

  return run_threads(threads, lanes, [&](int self) {
    std::vector<float> tmp_h(batch * round_up(widest, kTile));
    std::vector<float> tmp_x(batch * round_up(widest_i, kTile));
    Panel da_panel;
    auto accumulate = [&](BackLane& l, const float* a, int64_t k, int64_t n_rows,
                          const std::vector<float>& da, int64_t gn, std::vector<float>& dw) {
      pack_into(da_panel, n_rows, gn, [&](int64_t kk, int64_t q) { return da[kk * gn + q]; });
      matmul({a, 1, k, n_rows}, {nullptr, 0, 0, 0}, k, da_panel, dw.data(), l.ldw, true);
    };

    auto set_up = [&](int64_t lane) {
      const Range r = units(lane, lanes.count(), hid), ri = units(lane, lanes.count(), d);
      BackLane& l = back[lane];
      const int64_t gn = G * r.n;
      l.w_h_t = pack(gh, r.n, [&](int64_t kk, int64_t q) { return w.w_h[(r.j0 + q) * gh + kk]; });
      l.w_i_t = pack(gh, ri.n, [&](int64_t kk, int64_t q) { return w.w_i[(ri.j0 + q) * gh + kk]; });
      l.dx_blk.assign(block * batch * gn, 0.0f);
      if (!kSummed) l.dr_blk.assign(block * batch * gn, 0.0f);
      l.db.assign(gn, 0.0f);
      l.dbh.assign(r.n, 0.0f);
      l.ldw = round_up(gn, kTile);
      l.dw_i.assign(d * l.ldw, 0.0f);
      l.dw_h.assign(hid * l.ldw, 0.0f);
      for (int64_t b = 0; b < batch; ++b) {
        std::memcpy(&dh[b * hid + r.j0], dh_n + b * hid + r.j0, r.n * sizeof(float));
        std::memcpy(&dc[b * hid + r.j0], dc_n + b * hid + r.j0, r.n * sizeof(float));
      }
    };

    auto part_a = [&](int64_t lane, int64_t step) {
      const Range r = units(lane, lanes.count(), hid);
      const int64_t j0 = r.j0, n = r.n, gn = G * n, t = time_of(step);
      const int64_t first = (step % block) * batch;  // the step's rows in the block
      BackLane& l = back[lane];
      float* sx = shared_x.data() + (step % 2) * batch * gh;
      float* sr = kSummed ? sx : shared_r.data() + (step % 2) * batch * gh;
      float* ax = block_rows(a_x, step, d);
      float* ah = block_rows(a_h, step, hid);
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t k = first + b, row = rows(t, b);
        const float* hp = h_prev(t, b);
        if (lane == 0) {  // the block's rows of [x_t, h_prev], for every lane's (b)
          std::memcpy(ax + k * d, x + row * d, d * sizeof(float));
          std::memcpy(ah + k * hid, hp, hid * sizeof(float));
        }
        float* dxl = &l.dx_blk[k * gn];
        float* drl = kSummed ? dxl : &l.dr_blk[k * gn];
        if (!valid[t * batch + b]) {  // past the length: the carry's cotangents pass through
          std::memset(dxl, 0, gn * sizeof(float));
          if (!kSummed) std::memset(drl, 0, gn * sizeof(float));
        } else {
          const Bwd a{res + (t * batch + b) * Cell::kResidual * hid + j0,
                      hp + j0,
                      ys + row * hid + j0,
                      dys + row * hid + j0,
                      &dh[b * hid + j0],
                      &dc[b * hid + j0],
                      dxl,
                      drl,
                      n,
                      hid};
          for_units(n, [&](auto tag, int64_t j) { Cell::template backward<decltype(tag)>(a, j); });
          for (int64_t q = 0; q < gn; ++q) l.db[q] += dxl[q];
          if (!kSummed)
            for (int64_t j = 0; j < n; ++j) l.dbh[j] += drl[(G - 1) * n + j];
        }
        for (int g = 0; g < G; ++g) {
          std::memcpy(sx + b * gh + g * hid + j0, dxl + g * n, n * sizeof(float));
          if (!kSummed) std::memcpy(sr + b * gh + g * hid + j0, drl + g * n, n * sizeof(float));
        }
      }
    };

    auto part_b = [&](int64_t lane, int64_t step) {
      const Range r = units(lane, lanes.count(), hid), ri = units(lane, lanes.count(), d);
      const int64_t t = time_of(step);
      BackLane& l = back[lane];
      const float* sx = shared_x.data() + (step % 2) * batch * gh;
      const float* sr = kSummed ? sx : shared_r.data() + (step % 2) * batch * gh;
      const Operand none{nullptr, 0, 0, 0};
      const int64_t ldh = l.w_h_t.width(), ldx = l.w_i_t.width();
      matmul({sr, gh, 1, gh}, none, batch, l.w_h_t, tmp_h.data(), ldh);
      if (ri.n > 0) matmul({sx, gh, 1, gh}, none, batch, l.w_i_t, tmp_x.data(), ldx);
      for (int64_t b = 0; b < batch; ++b) {
        float* dhb = &dh[b * hid + r.j0];
        const float* th = tmp_h.data() + b * ldh;
        for (int64_t j = 0; j < r.n; ++j) dhb[j] += th[j];
        if (ri.n > 0)
          std::memcpy(out.dx + rows(t, b) * d + ri.j0, tmp_x.data() + b * ldx,
                      ri.n * sizeof(float));
      }
      if (step % block == block - 1 || step == t_len - 1) {  // the block's weight gradients
        const int64_t filled = (step % block + 1) * batch, gn = G * r.n;
        accumulate(l, block_rows(a_x, step, d), d, filled, l.dx_blk, gn, l.dw_i);
        accumulate(l, block_rows(a_h, step, hid), hid, filled, kSummed ? l.dx_blk : l.dr_blk,
                   gn, l.dw_h);
      }
    };

    for (int64_t k = 0; k <= t_len; ++k) {
      lanes.phase(k, self, [&](int64_t lane) {
        if (k == 0) set_up(lane);
        if (k > 0) part_b(lane, k - 1);
        if (k < t_len) part_a(lane, k);
      });
    }

    lanes.phase(t_len + 1, self, [&](int64_t lane) {
      const Range r = units(lane, lanes.count(), hid);
      const BackLane& l = back[lane];
      const int64_t n = r.n;
      for (int64_t q = 0; q < G * n; ++q) {
        const int64_t col = r.column(q, hid);
        for (int64_t kk = 0; kk < d; ++kk) out.dw_i[kk * gh + col] = l.dw_i[kk * l.ldw + q];
        for (int64_t kk = 0; kk < hid; ++kk) out.dw_h[kk * gh + col] = l.dw_h[kk * l.ldw + q];
        out.db[col] = l.db[q];
      }
      for (int64_t j = 0; j < n; ++j) out.dbh[r.j0 + j] = l.dbh[j];
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t at = b * hid + r.j0;
        std::memcpy(out.dh0 + at, &dh[at], n * sizeof(float));
        if (Cell::kCellState) {
          std::memcpy(out.dc0 + at, &dc[at], n * sizeof(float));
        } else {
          std::memset(out.dc0 + at, 0, n * sizeof(float));
        }
      }
    });
  });
}

// ------------------------------------------------------------------------ FFI handlers

using F32 = ffi::Buffer<ffi::F32>;
using U8 = ffi::Buffer<ffi::U8>;
using R32 = ffi::ResultBuffer<ffi::F32>;

enum CellKind : int64_t { kLstm = 0, kGru = 1, kRnnTanh = 2, kRnnRelu = 3 };

int groups(int64_t cell) { return cell == kLstm ? Lstm::kGroups : cell == kGru ? Gru::kGroups : 1; }

int residuals(int64_t cell) {
  return cell == kLstm ? Lstm::kResidual : cell == kGru ? Gru::kResidual : 0;
}

// Runs f(Cell{}) -> error message ("" on success) for the cell's code; C++ exceptions
// become the call's error.
template <class F>
ffi::Error dispatch(int64_t cell, F f) {
  std::string error;
  try {
    switch (cell) {
      case kLstm: error = f(Lstm{}); break;
      case kGru: error = f(Gru{}); break;
      case kRnnTanh: error = f(Elman<false>{}); break;
      case kRnnRelu: error = f(Elman<true>{}); break;
      default: error = "unknown cell " + std::to_string(cell);
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (error.empty()) return ffi::Error::Success();
  return ffi::Error::Internal("seqjax kernel: " + error);
}

ffi::Error bad(const std::string& what) {
  return ffi::Error::InvalidArgument("seqjax kernel: " + what);
}

// Checks x [t, B, d] (or [B, t, d]), w_i [d, G h], w_h [h, G h], b [G h], bh [h],
// h0 [B, h] and valid [t, B]; fills s.
ffi::Error shapes(int64_t cell, bool batch_major, const F32& x, const F32& w_i, const F32& w_h,
                  const F32& b, const F32& bh, const F32& h0, const U8& valid, Shapes* s) {
  if (cell < kLstm || cell > kRnnRelu) return bad("unknown cell " + std::to_string(cell));
  auto xd = x.dimensions(), id = w_i.dimensions(), wd = w_h.dimensions();
  auto bd = b.dimensions(), bhd = bh.dimensions(), hd = h0.dimensions(), vd = valid.dimensions();
  if (xd.size() != 3 || id.size() != 2 || wd.size() != 2 || bd.size() != 1 || bhd.size() != 1 ||
      hd.size() != 2 || vd.size() != 2)
    return bad("expected x of rank 3, w_i, w_h, h0 and valid of rank 2, b and bh of rank 1");
  *s = {batch_major ? xd[1] : xd[0], batch_major ? xd[0] : xd[1], xd[2], wd[0]};
  if (s->t <= 0 || s->b <= 0 || s->d <= 0 || s->h <= 0)
    return bad("t, B, d and h must be positive (the engine takes its plain path for empty ones)");
  const int64_t gh = groups(cell) * s->h;
  if (id[0] != s->d || id[1] != gh || wd[1] != gh || bd[0] != gh || bhd[0] != s->h ||
      hd[0] != s->b || hd[1] != s->h || vd[0] != s->t || vd[1] != s->b)
    return bad("x [t, B, d], w_i [d, G h], w_h [h, G h], b [G h], bh [h], h0 [B, h] and "
               "valid [t, B] disagree");
  return ffi::Error::Success();
}

// Whether every buffer holds `count` floats (the carries and cotangents, whose shapes the
// Python side makes; checked so that no mismatch reads or writes out of bounds).
template <class... Buffers>
bool counts(size_t count, const Buffers&... buffers) {
  return ((buffers.element_count() == count) && ...);
}

template <class... Buffers>
bool result_counts(size_t count, Buffers&... buffers) {
  return ((buffers->element_count() == count) && ...);
}

template <bool kTrain>
ffi::Error ForwardImpl(F32 x, F32 w_i, F32 w_h, F32 b, F32 bh, F32 h0, F32 c0, U8 valid,
                       int64_t cell, int64_t reverse, int64_t batch_major, R32 ys, R32 h_n,
                       R32 c_n, R32 res) {
  Shapes s;
  if (auto e = shapes(cell, batch_major, x, w_i, w_h, b, bh, h0, valid, &s); e.failure()) return e;
  if (kTrain && res->element_count() != static_cast<size_t>(s.t * s.b * residuals(cell) * s.h))
    return bad("the residuals must be [t, B, " + std::to_string(residuals(cell)) + " h]");
  const size_t carry = s.b * s.h;
  if (!counts(carry, c0) || !result_counts(carry, h_n, c_n) ||
      !result_counts(static_cast<size_t>(s.t * s.b * s.h), ys))
    return bad("c0, h_n and c_n must be [B, h] and ys [t, B, h]");
  prefer_huge_pages_all(ys);
  if (kTrain) prefer_huge_pages_all(res);
  const Rows rows{s.t, s.b, batch_major != 0};
  const Weights w{w_i.typed_data(), w_h.typed_data(), b.typed_data(), bh.typed_data()};
  return dispatch(cell, [&](auto c) {
    return forward<decltype(c)>(s, rows, x.typed_data(), w, h0.typed_data(), c0.typed_data(),
                         valid.typed_data(), reverse != 0, ys->typed_data(), h_n->typed_data(),
                         c_n->typed_data(), kTrain ? res->typed_data() : nullptr);
  });
}

ffi::Error InferImpl(F32 x, F32 w_i, F32 w_h, F32 b, F32 bh, F32 h0, F32 c0, U8 valid,
                     int64_t cell, int64_t reverse, int64_t batch_major, R32 ys, R32 h_n,
                     R32 c_n) {
  return ForwardImpl<false>(x, w_i, w_h, b, bh, h0, c0, valid, cell, reverse, batch_major, ys,
                            h_n, c_n, c_n);
}

ffi::Error BackwardImpl(F32 x, F32 w_i, F32 w_h, F32 b, F32 bh, F32 h0, F32 ys, F32 res,
                        F32 dys, F32 dh_n, F32 dc_n, U8 valid, int64_t cell, int64_t reverse,
                        int64_t batch_major, R32 dx, R32 dw_i, R32 dw_h, R32 db, R32 dbh,
                        R32 dh0, R32 dc0) {
  Shapes s;
  if (auto e = shapes(cell, batch_major, x, w_i, w_h, b, bh, h0, valid, &s); e.failure()) return e;
  const size_t carry = s.b * s.h, steps = s.t * s.b * s.h;
  if (!counts(carry, dh_n, dc_n) || !counts(steps, ys, dys) ||
      res.element_count() != steps * residuals(cell) ||
      !result_counts(carry, dh0, dc0) || !result_counts(s.t * s.b * s.d, dx) ||
      !result_counts(w_i.element_count(), dw_i) || !result_counts(w_h.element_count(), dw_h) ||
      !result_counts(b.element_count(), db) || !result_counts(bh.element_count(), dbh))
    return bad("the residuals, outputs, cotangents or gradients disagree with x and the weights");
  prefer_huge_pages_all(dx);
  const Rows rows{s.t, s.b, batch_major != 0};
  const Weights w{w_i.typed_data(), w_h.typed_data(), b.typed_data(), bh.typed_data()};
  const Grads g{dx->typed_data(),  dw_i->typed_data(), dw_h->typed_data(), db->typed_data(),
                dbh->typed_data(), dh0->typed_data(),  dc0->typed_data()};
  return dispatch(cell, [&](auto c) {
    return backward<decltype(c)>(s, rows, x.typed_data(), w, ys.typed_data(), h0.typed_data(),
                          res.typed_data(), dys.typed_data(), dh_n.typed_data(),
                          dc_n.typed_data(), valid.typed_data(), reverse != 0, g);
  });
}

ffi::Error TrainImpl(F32 x, F32 w_i, F32 w_h, F32 b, F32 bh, F32 h0, F32 c0, U8 valid,
                     int64_t cell, int64_t reverse, int64_t batch_major, R32 ys, R32 h_n,
                     R32 c_n, R32 res) {
  return ForwardImpl<true>(x, w_i, w_h, b, bh, h0, c0, valid, cell, reverse, batch_major, ys,
                           h_n, c_n, res);
}

// The arguments every handler starts with: x, w_i, w_h, b, bh, h0.
auto common() {
  return ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>();
}

// The attributes every handler ends its arguments with.
template <class Binding>
auto attributes(Binding binding) {
  return std::move(binding)  // a binding's methods take it as an rvalue
      .template Attr<int64_t>("cell")
      .template Attr<int64_t>("reverse")
      .template Attr<int64_t>("batch_major");
}

// The forward handlers' arguments (then c0, valid) and first results (ys, h_n, c_n).
auto forward_binding() {
  return attributes(common().Arg<F32>().Arg<U8>()).Ret<F32>().Ret<F32>().Ret<F32>();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxForward, InferImpl, forward_binding());

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxForwardTrain, TrainImpl,
                              forward_binding().Ret<F32>());  // and the residuals

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    SeqjaxBackward, BackwardImpl,
    attributes(common()
                   .Arg<F32>()    // ys
                   .Arg<F32>()    // residuals
                   .Arg<F32>()    // dys
                   .Arg<F32>()    // dh_n
                   .Arg<F32>()    // dc_n
                   .Arg<U8>())    // valid
        .Ret<F32>()               // dx
        .Ret<F32>()               // dw_i
        .Ret<F32>()               // dw_h
        .Ret<F32>()               // db
        .Ret<F32>()               // dbh
        .Ret<F32>()               // dh0
        .Ret<F32>());             // dc0

// ------------------------------------------------------------------------ module

namespace {

PyObject* handlers(PyObject*, PyObject*) {
  PyObject* dict = PyDict_New();
  if (dict == nullptr) return nullptr;
  const std::pair<const char*, void*> entries[] = {
      {"forward", reinterpret_cast<void*>(SeqjaxForward)},
      {"forward_train", reinterpret_cast<void*>(SeqjaxForwardTrain)},
      {"backward", reinterpret_cast<void*>(SeqjaxBackward)},
  };
  for (const auto& [name, fn] : entries) {
    PyObject* capsule = PyCapsule_New(fn, nullptr, nullptr);
    if (capsule == nullptr || PyDict_SetItemString(dict, name, capsule) != 0) {
      Py_XDECREF(capsule);
      Py_DECREF(dict);
      return nullptr;
    }
    Py_DECREF(capsule);
  }
  return dict;
}

// name -> (code, gate groups, residual groups), for the Python side's shapes.
PyObject* cells(PyObject*, PyObject*) {
  const std::pair<const char*, int64_t> entries[] = {
      {"lstm", kLstm}, {"gru", kGru}, {"simple_rnn_tanh", kRnnTanh}, {"simple_rnn_relu", kRnnRelu}};
  PyObject* dict = PyDict_New();
  if (dict == nullptr) return nullptr;
  for (const auto& [name, code] : entries) {
    PyObject* v = Py_BuildValue("(LLL)", static_cast<long long>(code),
                                static_cast<long long>(groups(code)),
                                static_cast<long long>(residuals(code)));
    if (v == nullptr || PyDict_SetItemString(dict, name, v) != 0) {
      Py_XDECREF(v);
      Py_DECREF(dict);
      return nullptr;
    }
    Py_DECREF(v);
  }
  return dict;
}

PyObject* threads(PyObject*, PyObject*) { return PyLong_FromLong(Pool::get().max_threads()); }

PyMethodDef methods[] = {
    {"handlers", handlers, METH_NOARGS, "The FFI handlers, name -> PyCapsule."},
    {"cells", cells, METH_NOARGS, "Cell name -> (code, gate groups, residual groups)."},
    {"max_threads", threads, METH_NOARGS, "Threads a call may use (SEQJAX_NUM_THREADS)."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_recurrent",
                      "seqjax's CPU recurrences (XLA FFI handlers).", -1, methods};

}  // namespace

// The instruction sets this file was compiled for (-march=native where it was installed)
// that the running CPU lacks, e.g. a wheel cached on one machine and installed on another:
// the import then fails and seqjax takes its XLA paths instead of crashing on SIGILL.
std::string missing_cpu_features() {
  std::string missing;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
#if defined(__AVX512F__)
  if (!__builtin_cpu_supports("avx512f")) missing += " avx512f";
#endif
#if defined(__AVX2__)
  if (!__builtin_cpu_supports("avx2")) missing += " avx2";
#endif
#if defined(__FMA__)
  if (!__builtin_cpu_supports("fma")) missing += " fma";
#endif
#endif
  return missing;
}

PyMODINIT_FUNC PyInit__recurrent(void) {
  const std::string missing = missing_cpu_features();
  if (!missing.empty()) {
    PyErr_SetString(PyExc_ImportError,
                    ("seqjax.kernels._recurrent was compiled for instructions this CPU lacks:" +
                     missing + " (rebuild it here, or set SEQJAX_CPU_ARCH when building)")
                        .c_str());
    return nullptr;
  }
  return PyModule_Create(&module);
}
