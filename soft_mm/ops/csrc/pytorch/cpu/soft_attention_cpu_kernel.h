// Copyright (c) soft_mm contributors. All rights reserved.
// CPU micro-kernels of the SOFT attention op, compiled once per instruction
// set. The includer defines SOFT_CPU_ISA (a namespace name) and may wrap the
// include in `#pragma GCC target`. No #pragma once and no includes here on
// purpose: every inline function must live in the ISA namespace, so that no
// out-of-line copy compiled for AVX2 can be picked by the linker for a
// baseline caller (hence also no std:: calls inside). Constants come from
// soft_attention_common.h, which every includer includes first.
//
// Register-blocked loops: kRows rows x 16 (or 8) columns of accumulators
// per step, for the Gaussian kernel and the Newton matmuls alike.

namespace soft_mm {
namespace cpu {
namespace SOFT_CPU_ISA {

constexpr int kCol = 8;  // == kColBlock
constexpr int kRows = 6;

// GCC vector extensions rather than auto-vectorisation: the register
// blocking below must survive, and the same source lowers to SSE2 in the
// baseline build and to AVX2/FMA in the AVX2 build.
typedef float vfloat __attribute__((vector_size(32)));
typedef double vdouble __attribute__((vector_size(32)));
typedef int32_t vint __attribute__((vector_size(32)));

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  using type = vfloat;
};
template <>
struct VecOf<double> {
  using type = vdouble;
};

template <typename V, typename T>
inline V splat(T a) {
  return a - V{};  // a broadcast (a - 0 == a even for -0, so no add is emitted)
}

template <typename V, typename T>
inline V load(const T* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V, typename T>
inline void store(T* p, V v) {
  __builtin_memcpy(p, &v, sizeof(V));
}

// exp(x) for x <= 0: Cephes' range reduction x = k ln2 + r and degree-6
// polynomial (~1 ulp), branch-free on 8 lanes; exp(x) < 1.7e-38
// (x < -87) is flushed to 0.
inline vfloat exp_nonpos(vfloat x) {
  const vfloat lo = splat<vfloat>(-87.0f);
  const vfloat xc = x < lo ? lo : x;
  // round(xc / ln2) for xc <= 0: truncation of (xc / ln2 - 0.5)
  const vint k = __builtin_convertvector(
      xc * splat<vfloat>(1.44269504088896341f) - splat<vfloat>(0.5f), vint);
  const vfloat kf = __builtin_convertvector(k, vfloat);
  vfloat r = xc - kf * splat<vfloat>(0.693359375f);
  r = r + kf * splat<vfloat>(2.12194440e-4f);
  vfloat p = splat<vfloat>(1.9875691500e-4f);
  p = p * r + splat<vfloat>(1.3981999507e-3f);
  p = p * r + splat<vfloat>(8.3334519073e-3f);
  p = p * r + splat<vfloat>(4.1665795894e-2f);
  p = p * r + splat<vfloat>(1.6666665459e-1f);
  p = p * r + splat<vfloat>(5.0000001201e-1f);
  p = p * r * r + r + splat<vfloat>(1.0f);
  const vint bits = (k + 127) << 23;
  const vfloat scale = (vfloat)bits;  // bit cast
  return x < lo ? vfloat{} : p * scale;
}

inline vdouble exp_nonpos(vdouble x) {
  vdouble out;
  for (int i = 0; i < 4; ++i) out[i] = __builtin_exp(x[i]);
  return out;
}

// One block of `nr` (<= kRows) rows x NC columns of the Gaussian kernel.
template <typename T, int NC>
inline void gaussian_block(const T* const* xp, const T* x_sq, int64_t nr,
                           int64_t d, const T* yt, const T* y_sq, int64_t m,
                           int64_t mp, int64_t j0, T* out) {
  using V = typename VecOf<T>::type;
  constexpr int lanes = sizeof(V) / sizeof(T);
  constexpr int nv = NC / lanes;
  V acc[kRows][nv] = {};
  for (int64_t c = 0; c < d; ++c) {
    V yv[nv];
    for (int v = 0; v < nv; ++v) yv[v] = load<V>(yt + c * mp + j0 + v * lanes);
    for (int r = 0; r < kRows; ++r) {
      const V a = splat<V>(xp[r][c]);
      for (int v = 0; v < nv; ++v) acc[r][v] += a * yv[v];
    }
  }
  const int64_t nc = m - j0 < NC ? m - j0 : NC;
  for (int r = 0; r < nr; ++r) {
    T e[NC];
    for (int v = 0; v < nv; ++v) {
      // fp32/fp64 epilogue, exponent clamped at 0 with NaN kept
      // (gaussian_exponent).
      const V half_sq = splat<V>(T(0.5)) *
                        (splat<V>(x_sq[r]) + load<V>(y_sq + j0 + v * lanes));
      V t = acc[r][v] - half_sq;
      t = t > V{} ? V{} : t;
      store<V>(e + v * lanes, exp_nonpos(t));
    }
    T* o = out + r * m + j0;
    for (int j = 0; j < nc; ++j) o[j] = e[j];
  }
}

template <typename T>
inline void gaussian_rows(const T* x, int64_t rows, int64_t d, const T* yt,
                          const T* y_sq, int64_t m, int64_t mp, T* out) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
    const int64_t nr = rows - r0 < kRows ? rows - r0 : kRows;
    // Tail rows alias the last valid row: computed, never stored.
    const T* xp[kRows];
    T x_sq[kRows];
    for (int r = 0; r < kRows; ++r) {
      xp[r] = x + (r0 + (r < nr ? r : nr - 1)) * d;
      T s = 0;
      for (int64_t c = 0; c < d; ++c) s += xp[r][c] * xp[r][c];
      x_sq[r] = s;
    }
    // 6 rows x 16 columns of accumulators (12 AVX2 registers for float);
    // an 8-column block for the rest of the padded width.
    int64_t j0 = 0;
    for (; j0 + 2 * kCol <= mp; j0 += 2 * kCol)
      gaussian_block<T, 2 * kCol>(xp, x_sq, nr, d, yt, y_sq, m, mp, j0,
                                  out + r0 * m);
    if (j0 < mp)
      gaussian_block<T, kCol>(xp, x_sq, nr, d, yt, y_sq, m, mp, j0,
                              out + r0 * m);
  }
}

// kRows rows x NC columns of c = a @ b (or 2 * twice - a @ b).
template <typename T, int NC>
inline void matmul_block(const T* const* ap, int64_t nr, const T* b, T* c,
                         const T* twice, int64_t m, int64_t mp, int64_t j0) {
  using V = typename VecOf<T>::type;
  constexpr int lanes = sizeof(V) / sizeof(T);
  constexpr int nv = NC / lanes;
  V acc[kRows][nv] = {};
  for (int64_t k = 0; k < m; ++k) {
    V bv[nv];
    for (int v = 0; v < nv; ++v) bv[v] = load<V>(b + k * mp + j0 + v * lanes);
    for (int r = 0; r < kRows; ++r) {
      const V av = splat<V>(ap[r][k]);
      for (int v = 0; v < nv; ++v) acc[r][v] += av * bv[v];
    }
  }
  for (int r = 0; r < nr; ++r) {
    for (int v = 0; v < nv; ++v) {
      const int64_t off = r * mp + j0 + v * lanes;
      V res = acc[r][v];
      if (twice) res = splat<V>(T(2)) * load<V>(twice + off) - res;
      store<V>(c + off, res);
    }
  }
}

// c = a @ b on mp-strided, zero-padded matrices, writing rows < m only.
// With `twice` set, c = 2 * twice - a @ b instead (the Newton update).
template <typename T>
inline void small_matmul(const T* a, const T* b, T* c, const T* twice,
                         int64_t m, int64_t mp) {
  for (int64_t i0 = 0; i0 < m; i0 += kRows) {
    const int64_t nr = m - i0 < kRows ? m - i0 : kRows;
    const T* ap[kRows];
    for (int r = 0; r < kRows; ++r)
      ap[r] = a + (i0 + (r < nr ? r : nr - 1)) * mp;
    const int64_t off = i0 * mp;
    const T* tw = twice ? twice + off : nullptr;
    int64_t j0 = 0;
    for (; j0 + 2 * kCol <= mp; j0 += 2 * kCol)
      matmul_block<T, 2 * kCol>(ap, nr, b, c + off, tw, m, mp, j0);
    if (j0 < mp) matmul_block<T, kCol>(ap, nr, b, c + off, tw, m, mp, j0);
  }
}

template <typename T>
inline void newton_matrix(const T* mat, int64_t m, int64_t mp, int64_t iters,
                          double ridge, T* work, T* out) {
  const int64_t sz = mp * mp;
  T* p = work;
  T* v = work + sz;
  T* vp = work + 2 * sz;
  T* next = work + 3 * sz;
  for (int64_t i = 0; i < 4 * sz; ++i) work[i] = T(0);
  T max_row = 0;
  for (int64_t i = 0; i < m; ++i) {
    T s = 0;
    for (int64_t j = 0; j < m; ++j) {
      const T b = mat[i * m + j];
      p[i * mp + j] = b;
      s += b < T(0) ? -b : b;
    }
    max_row = s > max_row ? s : max_row;
  }
  // alpha = kNewtonAlphaScale / ||B||_inf^2 from B itself, P = B + ridge I.
  const T alpha = T(kNewtonAlphaScale) / (max_row * max_row);
  for (int64_t i = 0; i < m; ++i) p[i * mp + i] += T(ridge);
  for (int64_t i = 0; i < sz; ++i) v[i] = alpha * p[i];
  for (int64_t it = 0; it < iters; ++it) {
    small_matmul<T>(v, p, vp, nullptr, m, mp);
    small_matmul<T>(vp, v, next, v, m, mp);  // next = 2 v - (v p) v
    T* t = v;
    v = next;
    next = t;
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < m; ++j) out[i * m + j] = v[i * mp + j];
}

// Weight gradient of a 'same' (k // 2-padded), stride-1 depthwise
// convolution over channels-last maps: acc[i][j][c] += the sum over output
// columns w of g[w][c] * x[w + j - k / 2][c] for one output row and one input
// row (kernel row i). Taps j0 .. j0 + NJ - 1 stay in registers over the whole
// w loop; columns where a tap falls outside the row (the padding) are
// skipped, so no padded copy of x is needed. The rows are L1/L2-resident:
// the maps are streamed from memory once.
template <typename T, int NJ, int NV>
inline void depthwise_wgrad_checked(const T* xrow, const T* grow, int64_t w,
                                    int64_t w_len, int64_t c_len, int64_t pad,
                                    int64_t j0, int64_t c0,
                                    typename VecOf<T>::type (&acc)[NJ][NV]) {
  using V = typename VecOf<T>::type;
  constexpr int lanes = sizeof(V) / sizeof(T);
  V gv[NV];
  for (int v = 0; v < NV; ++v)
    gv[v] = load<V>(grow + w * c_len + c0 + v * lanes);
  for (int jj = 0; jj < NJ; ++jj) {
    const int64_t col = w + j0 + jj - pad;
    if (col < 0 || col >= w_len) continue;
    for (int v = 0; v < NV; ++v)
      acc[jj][v] += gv[v] * load<V>(xrow + col * c_len + c0 + v * lanes);
  }
}

// NV vectors of channels at a time: NJ * NV independent accumulator chains
// keep both FMA ports busy (one chain per tap alone would not).
template <typename T, int NJ, int NV>
inline void depthwise_wgrad_taps(const T* xrow, const T* grow, int64_t w_len,
                                 int64_t c_len, int64_t pad, int64_t j0,
                                 T* arow) {
  using V = typename VecOf<T>::type;
  constexpr int lanes = sizeof(V) / sizeof(T);
  // Columns [w_lo, w_hi) have all NJ taps inside the row.
  int64_t w_lo = pad - j0;
  w_lo = w_lo < 0 ? 0 : (w_lo > w_len ? w_len : w_lo);
  int64_t w_hi = w_len + pad - j0 - NJ + 1;
  w_hi = w_hi < w_lo ? w_lo : (w_hi > w_len ? w_len : w_hi);
  for (int64_t c0 = 0; c0 < c_len; c0 += NV * lanes) {
    V acc[NJ][NV];
    for (int jj = 0; jj < NJ; ++jj)
      for (int v = 0; v < NV; ++v)
        acc[jj][v] = load<V>(arow + (j0 + jj) * c_len + c0 + v * lanes);
    for (int64_t w = 0; w < w_lo; ++w)
      depthwise_wgrad_checked<T, NJ, NV>(xrow, grow, w, w_len, c_len, pad, j0,
                                         c0, acc);
    const T* xw = xrow + (w_lo + j0 - pad) * c_len + c0;
    const T* gw = grow + w_lo * c_len + c0;
    for (int64_t w = w_lo; w < w_hi; ++w, xw += c_len, gw += c_len) {
      V gv[NV];
      for (int v = 0; v < NV; ++v) gv[v] = load<V>(gw + v * lanes);
      for (int jj = 0; jj < NJ; ++jj)
        for (int v = 0; v < NV; ++v)
          acc[jj][v] += gv[v] * load<V>(xw + jj * c_len + v * lanes);
    }
    for (int64_t w = w_hi; w < w_len; ++w)
      depthwise_wgrad_checked<T, NJ, NV>(xrow, grow, w, w_len, c_len, pad, j0,
                                         c0, acc);
    for (int jj = 0; jj < NJ; ++jj)
      for (int v = 0; v < NV; ++v)
        store<V>(arow + (j0 + jj) * c_len + c0 + v * lanes, acc[jj][v]);
  }
}

// Output rows [r0, r1) of the B * H rows: x and g are (B, H, W, C)
// contiguous, acc the (k, k, C) partial sum of this task. C is a multiple
// of the vector width.
template <typename T>
inline void depthwise_wgrad_rows(const T* x, const T* g, int64_t r0,
                                 int64_t r1, int64_t h_len, int64_t w_len,
                                 int64_t c_len, int64_t k, T* acc) {
  const int64_t pad = k / 2;
  // Two vectors of channels per step when C allows, taps then in groups of
  // at most 5 (9 -> 5 + 4): <= 10 accumulators, 2 gradients and a load in
  // the 16 vector registers. Otherwise one vector and groups of <= 8.
  using V = typename VecOf<T>::type;
  constexpr int64_t lanes = sizeof(V) / sizeof(T);
  const bool two = c_len % (2 * lanes) == 0;
  const int64_t max_taps = two ? 5 : 8;
  const int64_t groups = (k + max_taps - 1) / max_taps,
                per = (k + groups - 1) / groups;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / h_len, h = r % h_len;
    const T* grow = g + r * w_len * c_len;
    for (int64_t i = 0; i < k; ++i) {
      const int64_t hi = h + i - pad;
      if (hi < 0 || hi >= h_len) continue;
      const T* xrow = x + (b * h_len + hi) * w_len * c_len;
      T* arow = acc + i * k * c_len;
      for (int64_t j0 = 0; j0 < k; j0 += per) {
        const int64_t nj = k - j0 < per ? k - j0 : per;
        switch (nj * 2 + (two ? 1 : 0)) {
#define SOFT_WGRAD_CASE(N)                                                 \
  case 2 * N:                                                              \
    depthwise_wgrad_taps<T, N, 1>(xrow, grow, w_len, c_len, pad, j0,       \
                                  arow);                                   \
    break;                                                                 \
  case 2 * N + 1:                                                          \
    if (N <= 5)                                                            \
      depthwise_wgrad_taps<T, (N <= 5 ? N : 1), 2>(xrow, grow, w_len,      \
                                                   c_len, pad, j0, arow);  \
    break;
          SOFT_WGRAD_CASE(1)
          SOFT_WGRAD_CASE(2)
          SOFT_WGRAD_CASE(3)
          SOFT_WGRAD_CASE(4)
          SOFT_WGRAD_CASE(5)
          SOFT_WGRAD_CASE(6)
          SOFT_WGRAD_CASE(7)
          SOFT_WGRAD_CASE(8)
#undef SOFT_WGRAD_CASE
          default:
            break;
        }
      }
    }
  }
}

inline void gaussian_rows_f(const float* x, int64_t rows, int64_t d,
                            const float* yt, const float* y_sq, int64_t m,
                            int64_t mp, float* out) {
  gaussian_rows<float>(x, rows, d, yt, y_sq, m, mp, out);
}
inline void gaussian_rows_d(const double* x, int64_t rows, int64_t d,
                            const double* yt, const double* y_sq, int64_t m,
                            int64_t mp, double* out) {
  gaussian_rows<double>(x, rows, d, yt, y_sq, m, mp, out);
}
inline void newton_matrix_f(const float* mat, int64_t m, int64_t mp,
                            int64_t iters, double ridge, float* work,
                            float* out) {
  newton_matrix<float>(mat, m, mp, iters, ridge, work, out);
}
inline void newton_matrix_d(const double* mat, int64_t m, int64_t mp,
                            int64_t iters, double ridge, double* work,
                            double* out) {
  newton_matrix<double>(mat, m, mp, iters, ridge, work, out);
}

inline void depthwise_wgrad_rows_f(const float* x, const float* g, int64_t r0,
                                   int64_t r1, int64_t h_len, int64_t w_len,
                                   int64_t c_len, int64_t k, float* acc) {
  depthwise_wgrad_rows<float>(x, g, r0, r1, h_len, w_len, c_len, k, acc);
}
inline void depthwise_wgrad_rows_d(const double* x, const double* g,
                                   int64_t r0, int64_t r1, int64_t h_len,
                                   int64_t w_len, int64_t c_len, int64_t k,
                                   double* acc) {
  depthwise_wgrad_rows<double>(x, g, r0, r1, h_len, w_len, c_len, k, acc);
}

}  // namespace SOFT_CPU_ISA
}  // namespace cpu
}  // namespace soft_mm
