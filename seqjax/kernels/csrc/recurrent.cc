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
constexpr int64_t kRows = 4;           // rows of a register block

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

// tanh(x) = x P(x^2) / Q(x^2) on |x| <= 9 (beyond, tanh rounds to +-1 in float32): a
// rational fit of degree 4 over 4 in x^2, computed for seqjax by iteratively reweighted
// least squares; its float32 relative error is below 3.5e-7 on [-9, 9].
inline float tanh_approx(float x) {
  x = std::min(std::max(x, -9.0f), 9.0f);
  const float s = x * x;
  const float p = (((1.3439319e-08f * s + 2.0672951e-05f) * s + 3.4996110e-03f) * s +
                   1.3384470e-01f) * s + 1.0f;
  const float q = (((7.8119933e-07f * s + 3.2921092e-04f) * s + 2.5892457e-02f) * s +
                   4.6717793e-01f) * s + 1.0f;
  return std::min(std::max(x * p / q, -1.0f), 1.0f);
}

inline float sigmoid_approx(float x) { return 0.5f * tanh_approx(0.5f * x) + 0.5f; }

// ------------------------------------------------------------------------ matmul

// c[r, :kTile] = sum_k a[r, k] p[k, :kTile] for R rows of a (row stride lda).
template <int R>
inline void tile(const float* __restrict a, int64_t lda, const float* __restrict p, int64_t k,
                 float* __restrict c, int64_t ldc) {
  Vec acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) {
    acc0[r] = Vec{};
    acc1[r] = Vec{};
  }
  for (int64_t kk = 0; kk < k; ++kk) {
    const Vec w0 = load(p + kk * kTile);
    const Vec w1 = load(p + kk * kTile + kLanes);
    for (int r = 0; r < R; ++r) {
      const float s = a[r * lda + kk];
      acc0[r] += s * w0;
      acc1[r] += s * w1;
    }
  }
  for (int r = 0; r < R; ++r) {
    store(c + r * ldc, acc0[r]);
    store(c + r * ldc + kLanes, acc1[r]);
  }
}

// A packed panel: `blocks` blocks of [k, kTile] columns, each contiguous, so that a block
// stays in L1 while every row block of `a` passes over it.
struct Panel {
  std::vector<float> data;
  int64_t k = 0, blocks = 0;
  int64_t width() const { return blocks * kTile; }
};

// c[rows, panel.width()] = a[rows, panel.k] @ panel (row stride lda; c's is its width).
void matmul(const float* a, int64_t lda, int64_t rows, const Panel& panel, float* c) {
  const int64_t ldc = panel.width();
  for (int64_t cb = 0; cb < panel.blocks; ++cb) {
    const float* p = panel.data.data() + cb * panel.k * kTile;
    int64_t r = 0;
    for (; r + kRows <= rows; r += kRows) tile<kRows>(a + r * lda, lda, p, panel.k, c + r * ldc + cb * kTile, ldc);
    const float* ar = a + r * lda;
    float* cr = c + r * ldc + cb * kTile;
    switch (rows - r) {
      case 3: tile<3>(ar, lda, p, panel.k, cr, ldc); break;
      case 2: tile<2>(ar, lda, p, panel.k, cr, ldc); break;
      case 1: tile<1>(ar, lda, p, panel.k, cr, ldc); break;
      default: break;
    }
  }
}

// Panel of columns col(q), q < n, of a row-major [k, ld] matrix w; zero-padded to kTile.
template <class Col>
Panel pack_columns(const float* w, int64_t k, int64_t ld, int64_t n, Col col) {
  Panel panel;
  panel.k = k;
  panel.blocks = round_up(n, kTile) / kTile;
  panel.data.assign(panel.blocks * k * kTile, 0.0f);
  for (int64_t q = 0; q < n; ++q) {
    const int64_t src = col(q);
    float* dst = panel.data.data() + (q / kTile) * k * kTile + q % kTile;
    for (int64_t kk = 0; kk < k; ++kk) dst[kk * kTile] = w[kk * ld + src];
  }
  return panel;
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
int wanted_threads(int64_t batch, int64_t hidden) {
  const int64_t macs = batch * hidden * 4 * hidden;  // the recurrent matmul of one step
  int64_t n = std::min<int64_t>(hidden / 8, macs / 32768);
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
  int64_t t, b, h;
};

ffi::Error check(bool ok, const std::string& what) {
  return ok ? ffi::Error::Success() : ffi::Error::InvalidArgument("seqjax lstm kernel: " + what);
}

// The shapes of (u [t, B, 4h], w_h [h, 4h], valid [t, B]).
ffi::Error lstm_shapes(ffi::Buffer<ffi::F32>& u, ffi::Buffer<ffi::F32>& w_h,
                       ffi::Buffer<ffi::U8>& valid, Shapes* s) {
  auto ud = u.dimensions(), wd = w_h.dimensions(), vd = valid.dimensions();
  if (ud.size() != 3 || wd.size() != 2 || vd.size() != 2)
    return check(false, "expected u [t, B, 4h], w_h [h, 4h] and valid [t, B]");
  *s = {ud[0], ud[1], wd[0]};
  return check(wd[1] == 4 * s->h && ud[2] == 4 * s->h && vd[0] == s->t && vd[1] == s->b,
               "u, w_h and valid disagree on t, B or 4h");
}

struct Residuals {
  float* gates;  // [t, B, 4h] activated i, f, g, o
  float* c;      // [t, B, h] the cell state before the step
  float* h;      // [t, B, h] the output state before the step
};

template <bool kSave>
void lstm_forward(const Shapes& s, const float* u, const float* w_h, const float* h0,
                  const float* c0, const uint8_t* valid, bool reverse, float* hs, float* h_n,
                  float* c_n, Residuals res) {
  const int64_t t_len = s.t, batch = s.b, hid = s.h, g4 = 4 * hid;
  std::vector<float> hbuf(2 * batch * hid), c(batch * hid);
  Pool& pool = Pool::get();
  const int threads = pool.acquire(wanted_threads(batch, hid));
  Barrier barrier(threads);
  pool.run(threads, [&](int index) {
    const Range r = units(index, threads, hid);
    const int64_t j0 = r.j0, n = r.n;
    const Panel panel = pack_columns(w_h, hid, g4, 4 * n,
                                     [&](int64_t q) { return (q / n) * hid + j0 + q % n; });
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
      if (n > 0) matmul(hcur, hid, batch, panel, z.data());
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t row = (t * batch + b);
        const float* __restrict zb = &z[b * ldz];
        const float* __restrict ub = u + row * g4 + j0;
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
            for (int k = 0; k < 4; ++k) std::memset(res.gates + row * g4 + k * hid + j0, 0, n * sizeof(float));
            std::memcpy(res.c + row * hid + j0, cb, n * sizeof(float));
            std::memcpy(res.h + row * hid + j0, hc, n * sizeof(float));
          }
          continue;
        }
        float* __restrict gi = kSave ? res.gates + row * g4 + j0 : nullptr;
        for (int64_t j = 0; j < n; ++j) {
          const float i = sigmoid_approx(zb[j] + ub[j]);
          const float f = sigmoid_approx(zb[n + j] + ub[hid + j]);
          const float g = tanh_approx(zb[2 * n + j] + ub[2 * hid + j]);
          const float o = sigmoid_approx(zb[3 * n + j] + ub[3 * hid + j]);
          const float cp = cb[j];
          const float cn = f * cp + i * g;
          const float hv = o * tanh_approx(cn);
          if (kSave) {
            gi[j] = i;
            gi[hid + j] = f;
            gi[2 * hid + j] = g;
            gi[3 * hid + j] = o;
            res.c[row * hid + j0 + j] = cp;
            res.h[row * hid + j0 + j] = hc[j];
          }
          cb[j] = cn;
          hn[j] = hv;
          out[j] = hv;
        }
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

void lstm_backward(const Shapes& s, const float* w_h, const float* gates, const float* c_prev,
                   const float* dhs, const float* dh_n, const float* dc_n, const uint8_t* valid,
                   bool reverse, float* d_pre, float* dh0, float* dc0) {
  const int64_t t_len = s.t, batch = s.b, hid = s.h, g4 = 4 * hid;
  std::vector<float> dh(batch * hid), dc(batch * hid);
  Pool& pool = Pool::get();
  const int threads = pool.acquire(wanted_threads(batch, hid));
  Barrier barrier(threads);
  pool.run(threads, [&](int index) {
    const Range r = units(index, threads, hid);
    const int64_t j0 = r.j0, n = r.n;
    // dh_carry[:, j0 + q] = d_pre . W_h[j0 + q, :]: the panel is [4h, n] of W_h^T, read
    // as "row" kk = w[kk + (j0 + q) 4h] (ld 1).
    const Panel panel = pack_columns(w_h, g4, 1, n, [&](int64_t q) { return (j0 + q) * g4; });
    std::vector<float> tmp(batch * panel.width());
    const int64_t ldt = panel.width();
    for (int64_t b = 0; b < batch; ++b) {
      std::memcpy(&dh[b * hid + j0], dh_n + b * hid + j0, n * sizeof(float));
      std::memcpy(&dc[b * hid + j0], dc_n + b * hid + j0, n * sizeof(float));
    }
    for (int64_t step = 0; step < t_len; ++step) {
      const int64_t t = reverse ? step : t_len - 1 - step;
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t row = t * batch + b;
        float* __restrict dp = d_pre + row * g4 + j0;
        if (!valid[row]) {
          for (int k = 0; k < 4; ++k) std::memset(dp + k * hid, 0, n * sizeof(float));
          continue;
        }
        const float* __restrict ga = gates + row * g4 + j0;
        const float* __restrict cp = c_prev + row * hid + j0;
        const float* __restrict dho = dhs + row * hid + j0;
        float* __restrict dhb = &dh[b * hid + j0];
        float* __restrict dcb = &dc[b * hid + j0];
        for (int64_t j = 0; j < n; ++j) {
          const float i = ga[j], f = ga[hid + j], g = ga[2 * hid + j], o = ga[3 * hid + j];
          const float tc = tanh_approx(f * cp[j] + i * g);
          const float dhv = dho[j] + dhb[j];
          const float dcv = dcb[j] + dhv * o * (1.0f - tc * tc);
          dp[j] = dcv * g * i * (1.0f - i);
          dp[hid + j] = dcv * cp[j] * f * (1.0f - f);
          dp[2 * hid + j] = dcv * i * (1.0f - g * g);
          dp[3 * hid + j] = dhv * tc * o * (1.0f - o);
          dcb[j] = dcv * f;
        }
      }
      barrier.wait();
      if (n > 0) matmul(d_pre + t * batch * g4, g4, batch, panel, tmp.data());
      for (int64_t b = 0; b < batch; ++b) {
        if (valid[t * batch + b]) std::memcpy(&dh[b * hid + j0], &tmp[b * ldt], n * sizeof(float));
      }
    }
    for (int64_t b = 0; b < batch; ++b) {
      std::memcpy(dh0 + b * hid + j0, &dh[b * hid + j0], n * sizeof(float));
      std::memcpy(dc0 + b * hid + j0, &dc[b * hid + j0], n * sizeof(float));
    }
  });
  pool.release(threads);
}

// ------------------------------------------------------------------------ FFI handlers

ffi::Error LstmForwardImpl(ffi::Buffer<ffi::F32> u, ffi::Buffer<ffi::F32> w_h,
                           ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                           ffi::Buffer<ffi::U8> valid, int64_t reverse,
                           ffi::ResultBuffer<ffi::F32> hs, ffi::ResultBuffer<ffi::F32> h_n,
                           ffi::ResultBuffer<ffi::F32> c_n) {
  Shapes s;
  if (auto e = lstm_shapes(u, w_h, valid, &s); e.failure()) return e;
  lstm_forward<false>(s, u.typed_data(), w_h.typed_data(), h0.typed_data(), c0.typed_data(),
                      valid.typed_data(), reverse != 0, hs->typed_data(), h_n->typed_data(),
                      c_n->typed_data(), Residuals{nullptr, nullptr, nullptr});
  return ffi::Error::Success();
}

ffi::Error LstmForwardTrainImpl(ffi::Buffer<ffi::F32> u, ffi::Buffer<ffi::F32> w_h,
                                ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                                ffi::Buffer<ffi::U8> valid, int64_t reverse,
                                ffi::ResultBuffer<ffi::F32> hs, ffi::ResultBuffer<ffi::F32> h_n,
                                ffi::ResultBuffer<ffi::F32> c_n,
                                ffi::ResultBuffer<ffi::F32> gates,
                                ffi::ResultBuffer<ffi::F32> c_prev,
                                ffi::ResultBuffer<ffi::F32> h_prev) {
  Shapes s;
  if (auto e = lstm_shapes(u, w_h, valid, &s); e.failure()) return e;
  lstm_forward<true>(s, u.typed_data(), w_h.typed_data(), h0.typed_data(), c0.typed_data(),
                     valid.typed_data(), reverse != 0, hs->typed_data(), h_n->typed_data(),
                     c_n->typed_data(),
                     Residuals{gates->typed_data(), c_prev->typed_data(), h_prev->typed_data()});
  return ffi::Error::Success();
}

ffi::Error LstmBackwardImpl(ffi::Buffer<ffi::F32> w_h, ffi::Buffer<ffi::F32> gates,
                            ffi::Buffer<ffi::F32> c_prev, ffi::Buffer<ffi::F32> dhs,
                            ffi::Buffer<ffi::F32> dh_n, ffi::Buffer<ffi::F32> dc_n,
                            ffi::Buffer<ffi::U8> valid, int64_t reverse,
                            ffi::ResultBuffer<ffi::F32> d_pre, ffi::ResultBuffer<ffi::F32> dh0,
                            ffi::ResultBuffer<ffi::F32> dc0) {
  Shapes s;
  if (auto e = lstm_shapes(gates, w_h, valid, &s); e.failure()) return e;
  lstm_backward(s, w_h.typed_data(), gates.typed_data(), c_prev.typed_data(), dhs.typed_data(),
                dh_n.typed_data(), dc_n.typed_data(), valid.typed_data(), reverse != 0,
                d_pre->typed_data(), dh0->typed_data(), dc0->typed_data());
  return ffi::Error::Success();
}

using F32 = ffi::Buffer<ffi::F32>;
using R32 = ffi::ResultBuffer<ffi::F32>;

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxLstmForward, LstmForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Attr<int64_t>("reverse")
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxLstmForwardTrain, LstmForwardTrainImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Attr<int64_t>("reverse")
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxLstmBackward, LstmBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Attr<int64_t>("reverse")
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>());

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
