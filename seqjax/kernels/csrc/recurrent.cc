// The LSTM recurrence on the CPU, as XLA FFI handlers (seqjax.kernels.cpu).
//
// XLA's CPU runtime runs a loop body's ops one after another on one thread, so the
// recurrent matmul of an LSTM step, [B, h] x [h, 4h], uses one core. Here a layer's whole
// recurrence is one call that splits every step over threads by hidden unit: a thread owns
// units [j0, j0 + n) and computes their four gate columns, so the gate arithmetic needs no
// other thread's results and each step ends with one barrier (the next step's matmul reads
// every unit's h). The input projection, the weight gradients and the input gradients
// stay in XLA, as large matmuls over all steps.
//
// Forward (per step t, in the order of `reverse`):
//   z = u_t + h W_h;  i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
//   c = f * c + i * g;  h = o * tanh(c)
// A step whose `valid` is 0 (past its sequence's length) keeps the carry and outputs zeros.
// The training forward also stores, per step, the activated gates, c and h before the step.
//
// Backward (steps in the opposite order), from the stored residuals:
//   dh = dh_out_t + dh_carry;  dc = dc_carry + dh o (1 - tanh(c_t)^2)
//   d_pre = (dc g i(1-i), dc c_prev f(1-f), dc i (1-g^2), dh tanh(c_t) o(1-o))
//   dh_carry = d_pre W_h^T;  dc_carry = dc f
// A step past the length passes both carry cotangents through and has d_pre = 0.
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
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

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

int cpu_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// A step barrier for the threads of one call: spin (the steps take microseconds), then
// yield, so that an oversubscribed machine still makes progress.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    if (n_ == 1) return;
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins) {
      if (spins < 20000) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  const int n_;
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<int> gen_{0};
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
      if (spins < 20000) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }

  // How many threads a call may use now: 1 when another call holds the pool, or in a
  // process forked after the workers started (they do not exist there).
  int acquire(int want) {
    if (want <= 1 || getpid() != pid_ || !busy_.try_lock()) return 1;
    return std::min(want, max_threads_);
  }
  void release(int granted) {
    if (granted > 1) busy_.unlock();
  }
  int max_threads() const { return max_threads_; }

 private:
  Pool() : pid_(getpid()), max_threads_(env_int("SEQJAX_NUM_THREADS", std::min(cpu_count(), 8))) {}

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

// Threads for a layer: enough work per step and per thread to pay for a barrier a step.
int wanted_threads(int64_t batch, int64_t inputs, int64_t hidden) {
  const int64_t macs = batch * (inputs + hidden) * 4 * hidden;  // one step's matmul
  const int64_t n = std::min<int64_t>(hidden / 8, macs / 32768);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n, Pool::get().max_threads())));
}

// Units [j0, j0 + n) of thread `index` of `threads` over `hidden` units.
struct Range {
  int64_t j0, n;
};
Range units(int index, int threads, int64_t hidden) {
  const int64_t base = hidden / threads, extra = hidden % threads;
  const int64_t j0 = index * base + std::min<int64_t>(index, extra);
  return {j0, base + (index < extra ? 1 : 0)};
}

// ------------------------------------------------------------------------ LSTM

struct Shapes {
  int64_t t, b, d, h;
};

ffi::Error check(bool ok, const std::string& what) {
  return ok ? ffi::Error::Success() : ffi::Error::InvalidArgument("seqjax lstm kernel: " + what);
}

// The shapes of (x [t, B, d], w_i [d, 4h], w_h [h, 4h], valid [t, B]).
ffi::Error lstm_shapes(const ffi::Buffer<ffi::F32>& x, const ffi::Buffer<ffi::F32>& w_i,
                       const ffi::Buffer<ffi::F32>& w_h, const ffi::Buffer<ffi::U8>& valid,
                       Shapes* s) {
  auto xd = x.dimensions(), id = w_i.dimensions(), wd = w_h.dimensions();
  auto vd = valid.dimensions();
  if (xd.size() != 3 || id.size() != 2 || wd.size() != 2 || vd.size() != 2)
    return check(false, "expected x [t, B, d], w_i [d, 4h], w_h [h, 4h] and valid [t, B]");
  *s = {xd[0], xd[1], xd[2], wd[0]};
  return check(id[0] == s->d && id[1] == 4 * s->h && wd[1] == 4 * s->h && vd[0] == s->t &&
                   vd[1] == s->b,
               "x, w_i, w_h and valid disagree on t, B, d or 4h");
}

struct Residuals {
  float* gates;  // [t, B, 4h] activated i, f, g, o
  float* c;      // [t, B, h] the cell state before the step
};

template <bool kSave>
void lstm_forward(const Shapes& s, const float* x, const float* w_i, const float* w_h,
                  const float* bias, const float* h0, const float* c0, const uint8_t* valid,
                  bool reverse, float* hs, float* h_n, float* c_n, Residuals res) {
  const int64_t t_len = s.t, batch = s.b, d = s.d, hid = s.h, g4 = 4 * hid;
  std::vector<float> hbuf(2 * batch * hid), c(batch * hid);
  Pool& pool = Pool::get();
  const int threads = pool.acquire(wanted_threads(batch, d, hid));
  Barrier barrier(threads);
  pool.run(threads, [&](int index) {
    const Range r = units(index, threads, hid);
    const int64_t j0 = r.j0, n = r.n;
    // Columns: the gates i, f, g, o of units j0.., each n wide; rows: W_i's, then W_h's.
    const Panel panel = pack(d + hid, 4 * n, [&](int64_t kk, int64_t q) {
      const int64_t col = (q / n) * hid + j0 + q % n;
      return kk < d ? w_i[kk * g4 + col] : w_h[(kk - d) * g4 + col];
    });
    std::vector<float> z(batch * panel.width());
    const int64_t ldz = panel.width();
    for (int64_t b = 0; b < batch; ++b) {
      std::memcpy(&hbuf[b * hid + j0], h0 + b * hid + j0, n * sizeof(float));
      std::memcpy(&c[b * hid + j0], c0 + b * hid + j0, n * sizeof(float));
    }
    barrier.wait();
    for (int64_t step = 0; step < t_len; ++step) {
      const int64_t t = reverse ? t_len - 1 - step : step;
      const float* hcur = &hbuf[(step % 2) * batch * hid];
      float* hnext = &hbuf[((step + 1) % 2) * batch * hid];
      if (n > 0)
        matmul({x + t * batch * d, d, 1, d}, {hcur, hid, 1, hid}, batch, panel, z.data(), ldz);
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t row = t * batch + b;
        const float* __restrict zb = &z[b * ldz];
        const float* __restrict bb = bias + j0;
        const float* __restrict hc = hcur + b * hid + j0;
        float* __restrict hn = hnext + b * hid + j0;
        float* __restrict cb = &c[b * hid + j0];
        float* __restrict out = hs + row * hid + j0;
        if (!valid[row]) {
          for (int64_t j = 0; j < n; ++j) {
            hn[j] = hc[j];
            out[j] = 0.0f;
          }
          if (kSave) {
            for (int k = 0; k < 4; ++k)
              std::memset(res.gates + row * g4 + k * hid + j0, 0, n * sizeof(float));
            std::memcpy(res.c + row * hid + j0, cb, n * sizeof(float));
          }
          continue;
        }
        float* __restrict gi = kSave ? res.gates + row * g4 + j0 : nullptr;
        float* __restrict rc = kSave ? res.c + row * hid + j0 : nullptr;
        for_units(n, [&](auto tag, int64_t j) {
          using T = decltype(tag);
          const T i = sigmoid_approx(get<T>(zb + j) + get<T>(bb + j));
          const T f = sigmoid_approx(get<T>(zb + n + j) + get<T>(bb + hid + j));
          const T g = tanh_approx(get<T>(zb + 2 * n + j) + get<T>(bb + 2 * hid + j));
          const T o = sigmoid_approx(get<T>(zb + 3 * n + j) + get<T>(bb + 3 * hid + j));
          const T cp = get<T>(cb + j);
          const T cn = f * cp + i * g;
          const T hv = o * tanh_approx(cn);
          if (kSave) {
            put(gi + j, i);
            put(gi + hid + j, f);
            put(gi + 2 * hid + j, g);
            put(gi + 3 * hid + j, o);
            put(rc + j, cp);
          }
          put(cb + j, cn);
          put(hn + j, hv);
          put(out + j, hv);
        });
      }
      barrier.wait();
    }
    const float* hlast = &hbuf[(t_len % 2) * batch * hid];
    for (int64_t b = 0; b < batch; ++b) {
      std::memcpy(h_n + b * hid + j0, hlast + b * hid + j0, n * sizeof(float));
      std::memcpy(c_n + b * hid + j0, &c[b * hid + j0], n * sizeof(float));
    }
  });
  pool.release(threads);
}

// The whole backward pass but the loss: the gradients of x (dx [t, B, d]), of the weights
// (dw_i [d, 4h], dw_h [h, 4h], db [4h]) and of the initial carry (dh0, dc0), from the
// residuals of the training forward pass and the outputs hs.
//
// Per step, after the gate arithmetic of its units, a thread computes its units' dh_carry
// and its share of dx in one matmul, d_pre [B, 4h] x [W_h; W_i]^T (the step's d_pre of all
// units, hence the barrier). The weight gradients of its gate columns add up, every S steps,
// as one matmul [x_t, h_prev]^T [d + h, S B] x d_pre [S B, its 4n columns] in its own
// accumulator: no other thread writes those columns, so no further barrier.
//
// h_prev (the h a step started from) is the output of the step run before it if that step
// was within its length, else h0: true where `valid` holds a prefix of each sequence's steps,
// as lengths make it.
struct Grads {
  float *dx, *dw_i, *dw_h, *db, *dh0, *dc0;
};

void lstm_backward(const Shapes& s, const float* x, const float* w_i, const float* w_h,
                   const float* hs, const float* h0, const float* gates, const float* c_prev,
                   const float* dhs, const float* dh_n, const float* dc_n, const uint8_t* valid,
                   bool reverse, Grads out) {
  const int64_t t_len = s.t, batch = s.b, d = s.d, hid = s.h, g4 = 4 * hid, dh_ = d + hid;
  const int64_t block = std::max<int64_t>(1, 256 / std::max<int64_t>(batch, 1));
  std::vector<float> dh(batch * hid), dc(batch * hid), d_pre(2 * batch * g4);
  Pool& pool = Pool::get();
  const int threads = pool.acquire(wanted_threads(batch, d, hid));
  Barrier barrier(threads);
  pool.run(threads, [&](int index) {
    const Range r = units(index, threads, hid), ri = units(index, threads, d);
    const int64_t j0 = r.j0, n = r.n, i0 = ri.j0, ni = ri.n, n4 = 4 * n;
    // Columns: W_h^T's j0.. (n), then W_i^T's i0.. (ni); rows: the 4h gate columns.
    const Panel panel = pack(g4, n + ni, [&](int64_t kk, int64_t q) {
      return q < n ? w_h[(j0 + q) * g4 + kk] : w_i[(i0 + q - n) * g4 + kk];
    });
    std::vector<float> tmp(batch * panel.width());
    const int64_t ldt = panel.width();
    // The weight gradients of this thread's gate columns (local order: gate-major, n each).
    std::vector<float> a_blk(block * batch * dh_), da_blk(block * batch * n4), db(n4, 0.0f);
    Panel da_panel;
    const int64_t ldw = round_up(n4, kTile);
    std::vector<float> dw(dh_ * ldw, 0.0f);
    int64_t filled = 0;  // rows of a_blk and da_blk
    auto flush = [&] {
      if (filled == 0 || n4 == 0) return;
      pack_into(da_panel, filled, n4, [&](int64_t kk, int64_t q) { return da_blk[kk * n4 + q]; });
      matmul({a_blk.data(), 1, dh_, filled}, {nullptr, 0, 0, 0}, dh_, da_panel, dw.data(), ldw,
             /*accumulate=*/true);
      filled = 0;
    };
    for (int64_t b = 0; b < batch; ++b) {
      std::memcpy(&dh[b * hid + j0], dh_n + b * hid + j0, n * sizeof(float));
      std::memcpy(&dc[b * hid + j0], dc_n + b * hid + j0, n * sizeof(float));
    }
    for (int64_t step = 0; step < t_len; ++step) {
      const int64_t t = reverse ? step : t_len - 1 - step;
      const int64_t prev = reverse ? t + 1 : t - 1;  // the step run before t
      float* dp_step = &d_pre[(step % 2) * batch * g4];
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t row = t * batch + b;
        float* __restrict dp = dp_step + b * g4 + j0;
        float* __restrict da = &da_blk[(filled + b) * n4];
        float* __restrict arow = &a_blk[(filled + b) * dh_];
        const bool prev_ok = prev >= 0 && prev < t_len && valid[prev * batch + b];
        std::memcpy(arow, x + row * d, d * sizeof(float));
        std::memcpy(arow + d, prev_ok ? hs + (prev * batch + b) * hid : h0 + b * hid,
                    hid * sizeof(float));
        if (!valid[row]) {
          for (int k = 0; k < 4; ++k) std::memset(dp + k * hid, 0, n * sizeof(float));
          std::memset(da, 0, n4 * sizeof(float));
          continue;
        }
        const float* __restrict ga = gates + row * g4 + j0;
        const float* __restrict cp = c_prev + row * hid + j0;
        const float* __restrict dho = dhs + row * hid + j0;
        float* __restrict dhb = &dh[b * hid + j0];
        float* __restrict dcb = &dc[b * hid + j0];
        for_units(n, [&](auto tag, int64_t j) {
          using T = decltype(tag);
          const T i = get<T>(ga + j), f = get<T>(ga + hid + j);
          const T g = get<T>(ga + 2 * hid + j), o = get<T>(ga + 3 * hid + j);
          const T c = get<T>(cp + j);
          const T tc = tanh_approx(f * c + i * g);
          const T dhv = get<T>(dho + j) + get<T>(dhb + j);
          const T dcv = get<T>(dcb + j) + dhv * o * (1.0f - tc * tc);
          const T d_i = dcv * g * i * (1.0f - i), d_f = dcv * c * f * (1.0f - f);
          const T d_g = dcv * i * (1.0f - g * g), d_o = dhv * tc * o * (1.0f - o);
          put(dp + j, d_i);
          put(dp + hid + j, d_f);
          put(dp + 2 * hid + j, d_g);
          put(dp + 3 * hid + j, d_o);
          put(da + j, d_i);
          put(da + n + j, d_f);
          put(da + 2 * n + j, d_g);
          put(da + 3 * n + j, d_o);
          put(dcb + j, dcv * f);
        });
        for (int64_t q = 0; q < n4; ++q) db[q] += da[q];
      }
      filled += batch;
      barrier.wait();
      if (n + ni > 0)
        matmul({dp_step, g4, 1, g4}, {nullptr, 0, 0, 0}, batch, panel, tmp.data(), ldt);
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t row = t * batch + b;
        if (valid[row]) std::memcpy(&dh[b * hid + j0], &tmp[b * ldt], n * sizeof(float));
        std::memcpy(out.dx + row * d + i0, &tmp[b * ldt + n], ni * sizeof(float));
      }
      if (filled == block * batch) flush();
    }
    flush();
    for (int64_t q = 0; q < n4; ++q) {
      const int64_t col = (q / n) * hid + j0 + q % n;
      for (int64_t kk = 0; kk < d; ++kk) out.dw_i[kk * g4 + col] = dw[kk * ldw + q];
      for (int64_t kk = 0; kk < hid; ++kk) out.dw_h[kk * g4 + col] = dw[(d + kk) * ldw + q];
      out.db[col] = db[q];
    }
    for (int64_t b = 0; b < batch; ++b) {
      std::memcpy(out.dh0 + b * hid + j0, &dh[b * hid + j0], n * sizeof(float));
      std::memcpy(out.dc0 + b * hid + j0, &dc[b * hid + j0], n * sizeof(float));
    }
  });
  pool.release(threads);
}

// ------------------------------------------------------------------------ FFI handlers

using F32 = ffi::Buffer<ffi::F32>;
using U8 = ffi::Buffer<ffi::U8>;
using R32 = ffi::ResultBuffer<ffi::F32>;

ffi::Error LstmForwardImpl(F32 x, F32 w_i, F32 w_h, F32 b, F32 h0, F32 c0, U8 valid,
                           int64_t reverse, R32 hs, R32 h_n, R32 c_n) {
  Shapes s;
  if (auto e = lstm_shapes(x, w_i, w_h, valid, &s); e.failure()) return e;
  prefer_huge_pages_all(hs);
  lstm_forward<false>(s, x.typed_data(), w_i.typed_data(), w_h.typed_data(), b.typed_data(),
                      h0.typed_data(), c0.typed_data(), valid.typed_data(), reverse != 0,
                      hs->typed_data(), h_n->typed_data(), c_n->typed_data(),
                      Residuals{nullptr, nullptr});
  return ffi::Error::Success();
}

ffi::Error LstmForwardTrainImpl(F32 x, F32 w_i, F32 w_h, F32 b, F32 h0, F32 c0, U8 valid,
                                int64_t reverse, R32 hs, R32 h_n, R32 c_n, R32 gates,
                                R32 c_prev) {
  Shapes s;
  if (auto e = lstm_shapes(x, w_i, w_h, valid, &s); e.failure()) return e;
  prefer_huge_pages_all(hs, gates, c_prev);
  lstm_forward<true>(s, x.typed_data(), w_i.typed_data(), w_h.typed_data(), b.typed_data(),
                     h0.typed_data(), c0.typed_data(), valid.typed_data(), reverse != 0,
                     hs->typed_data(), h_n->typed_data(), c_n->typed_data(),
                     Residuals{gates->typed_data(), c_prev->typed_data()});
  return ffi::Error::Success();
}

ffi::Error LstmBackwardImpl(F32 x, F32 w_i, F32 w_h, F32 hs, F32 h0, F32 gates, F32 c_prev,
                            F32 dhs, F32 dh_n, F32 dc_n, U8 valid, int64_t reverse, R32 dx,
                            R32 dw_i, R32 dw_h, R32 db, R32 dh0, R32 dc0) {
  Shapes s;
  if (auto e = lstm_shapes(x, w_i, w_h, valid, &s); e.failure()) return e;
  prefer_huge_pages_all(dx);
  lstm_backward(s, x.typed_data(), w_i.typed_data(), w_h.typed_data(), hs.typed_data(),
                h0.typed_data(), gates.typed_data(), c_prev.typed_data(), dhs.typed_data(),
                dh_n.typed_data(), dc_n.typed_data(), valid.typed_data(), reverse != 0,
                Grads{dx->typed_data(), dw_i->typed_data(), dw_h->typed_data(), db->typed_data(),
                      dh0->typed_data(), dc0->typed_data()});
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxLstmForward, LstmForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()  // x
                                  .Arg<F32>()  // w_i
                                  .Arg<F32>()  // w_h
                                  .Arg<F32>()  // b
                                  .Arg<F32>()  // h0
                                  .Arg<F32>()  // c0
                                  .Arg<U8>()   // valid
                                  .Attr<int64_t>("reverse")
                                  .Ret<F32>()  // hs
                                  .Ret<F32>()  // h_n
                                  .Ret<F32>());  // c_n

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxLstmForwardTrain, LstmForwardTrainImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()  // x
                                  .Arg<F32>()  // w_i
                                  .Arg<F32>()  // w_h
                                  .Arg<F32>()  // b
                                  .Arg<F32>()  // h0
                                  .Arg<F32>()  // c0
                                  .Arg<U8>()   // valid
                                  .Attr<int64_t>("reverse")
                                  .Ret<F32>()  // hs
                                  .Ret<F32>()  // h_n
                                  .Ret<F32>()  // c_n
                                  .Ret<F32>()  // gates
                                  .Ret<F32>());  // c_prev

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxLstmBackward, LstmBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()  // x
                                  .Arg<F32>()  // w_i
                                  .Arg<F32>()  // w_h
                                  .Arg<F32>()  // hs
                                  .Arg<F32>()  // h0
                                  .Arg<F32>()  // gates
                                  .Arg<F32>()  // c_prev
                                  .Arg<F32>()  // dhs
                                  .Arg<F32>()  // dh_n
                                  .Arg<F32>()  // dc_n
                                  .Arg<U8>()   // valid
                                  .Attr<int64_t>("reverse")
                                  .Ret<F32>()  // dx
                                  .Ret<F32>()  // dw_i
                                  .Ret<F32>()  // dw_h
                                  .Ret<F32>()  // db
                                  .Ret<F32>()  // dh0
                                  .Ret<F32>());  // dc0

// ------------------------------------------------------------------------ module

namespace {

PyObject* handlers(PyObject*, PyObject*) {
  PyObject* dict = PyDict_New();
  if (dict == nullptr) return nullptr;
  const std::pair<const char*, void*> entries[] = {
      {"lstm_forward", reinterpret_cast<void*>(SeqjaxLstmForward)},
      {"lstm_forward_train", reinterpret_cast<void*>(SeqjaxLstmForwardTrain)},
      {"lstm_backward", reinterpret_cast<void*>(SeqjaxLstmBackward)},
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

PyObject* threads(PyObject*, PyObject*) { return PyLong_FromLong(Pool::get().max_threads()); }

PyObject* lanes(PyObject*, PyObject*) { return PyLong_FromLong(kLanes); }

PyMethodDef methods[] = {
    {"handlers", handlers, METH_NOARGS, "The FFI handlers, name -> PyCapsule."},
    {"max_threads", threads, METH_NOARGS, "Threads a call may use (SEQJAX_NUM_THREADS)."},
    {"lanes", lanes, METH_NOARGS, "float32 lanes of the vectors the kernels were built for."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_recurrent",
                      "seqjax's CPU recurrences (XLA FFI handlers).", -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__recurrent(void) { return PyModule_Create(&module); }
