// Copyright (c) soft_mm contributors. All rights reserved.
// CUDA kernels of the SOFT attention op. Inputs may be float, half, bfloat16
// or double; everything accumulates in acc_t (float, or double for double).
#pragma once

#include <cuda_runtime.h>

#include "soft_attention_common.h"

namespace soft_mm {
namespace cuda {

template <typename acc_t>
__device__ __forceinline__ acc_t exp_acc(acc_t x);
template <>
__device__ __forceinline__ float exp_acc<float>(float x) {
  return __expf(x);
}
template <>
__device__ __forceinline__ double exp_acc<double>(double x) {
  return exp(x);
}

// ---------------------------------------------------------------------------
// Gaussian kernel forward: out[b, i, j] = exp(-|x_bi - y_bj|^2 / 2).
// A 64 x 64 output tile per block of 16 x 16 threads, 4 x 4 outputs per
// thread, d consumed in slabs of 16 staged in shared memory (transposed so
// that both operands are read without bank conflicts). The norms |x|^2,
// |y|^2 are accumulated in the same loop, and the epilogue (identity
// x.y - |x|^2/2 - |y|^2/2, clamp at 0, exp) runs in acc_t.
constexpr int kGTile = 64;
constexpr int kGSlab = 16;
constexpr int kGThreads = 16;  // per dimension
constexpr int kGPer = kGTile / kGThreads;

template <typename scalar_t, typename acc_t>
__global__ void gaussian_forward_kernel(const scalar_t* __restrict__ x,
                                        const scalar_t* __restrict__ y,
                                        acc_t* __restrict__ out, int64_t n,
                                        int64_t m, int64_t d,
                                        int64_t tiles_n, int64_t tiles_m) {
  __shared__ acc_t xs[kGSlab][kGTile + 1];
  __shared__ acc_t ys[kGSlab][kGTile + 1];
  const int64_t tile = blockIdx.x;
  const int64_t b = tile / (tiles_n * tiles_m);
  const int64_t i0 = (tile / tiles_m) % tiles_n * kGTile;
  const int64_t j0 = tile % tiles_m * kGTile;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * kGThreads + tx;
  const scalar_t* xb = x + b * n * d;
  const scalar_t* yb = y + b * m * d;

  acc_t acc[kGPer][kGPer] = {};
  acc_t x_sq[kGPer] = {};
  acc_t y_sq[kGPer] = {};
  for (int64_t c0 = 0; c0 < d; c0 += kGSlab) {
    // 64 rows x 16 columns of each operand, 4 per thread, coalesced in c.
    for (int l = tid; l < kGTile * kGSlab; l += kGThreads * kGThreads) {
      const int r = l / kGSlab, c = l % kGSlab;
      const bool in_c = c0 + c < d;
      xs[c][r] = (i0 + r < n && in_c)
                     ? static_cast<acc_t>(xb[(i0 + r) * d + c0 + c])
                     : acc_t(0);
      ys[c][r] = (j0 + r < m && in_c)
                     ? static_cast<acc_t>(yb[(j0 + r) * d + c0 + c])
                     : acc_t(0);
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < kGSlab; ++c) {
      acc_t xv[kGPer], yv[kGPer];
#pragma unroll
      for (int p = 0; p < kGPer; ++p) {
        xv[p] = xs[c][ty + p * kGThreads];
        yv[p] = ys[c][tx + p * kGThreads];
        x_sq[p] += xv[p] * xv[p];
        y_sq[p] += yv[p] * yv[p];
      }
#pragma unroll
      for (int p = 0; p < kGPer; ++p)
#pragma unroll
        for (int q = 0; q < kGPer; ++q) acc[p][q] += xv[p] * yv[q];
    }
    __syncthreads();
  }
#pragma unroll
  for (int p = 0; p < kGPer; ++p) {
    const int64_t i = i0 + ty + p * kGThreads;
    if (i >= n) continue;
#pragma unroll
    for (int q = 0; q < kGPer; ++q) {
      const int64_t j = j0 + tx + q * kGThreads;
      if (j < m)
        out[(b * n + i) * m + j] =
            exp_acc(gaussian_exponent(acc[p][q], x_sq[p], y_sq[q]));
    }
  }
}

// ---------------------------------------------------------------------------
// Gaussian kernel backward, one kernel for both inputs:
//   out[r, c] = sum_s E[r, s] z[s, c] - (sum_s E[r, s]) w[r, c],
// with E = grad * kernel read through strides (r_stride, s_stride): for
// dx, r = i, s = j, z = y, w = x; for dy, r = j, s = i, z = x, w = y (E
// transposed). The reduction over s is split across gridDim.y blocks that
// write partial sums (summed afterwards, deterministically) so that dy,
// which has few rows and a long reduction, still fills the GPU.
constexpr int kBTile = 32;
constexpr int kBRowsPerThread = 4;  // 32 x 8 threads

template <typename scalar_t, typename acc_t>
__global__ void gaussian_backward_kernel(
    const scalar_t* __restrict__ grad, const acc_t* __restrict__ kernel,
    const scalar_t* __restrict__ z, const scalar_t* __restrict__ w,
    acc_t* __restrict__ partial, int64_t rows, int64_t red, int64_t cols,
    int64_t r_stride, int64_t s_stride, int64_t tiles_r, int64_t tiles_c,
    int64_t s_chunk) {
  __shared__ acc_t es[kBTile][kBTile + 1];  // [r][s]
  __shared__ acc_t zs[kBTile][kBTile + 1];  // [s][c]
  const int64_t tile = blockIdx.x;
  const int64_t batch = gridDim.x / (tiles_r * tiles_c);
  const int64_t b = tile / (tiles_r * tiles_c);
  const int64_t r0 = (tile / tiles_c) % tiles_r * kBTile;
  const int64_t c0 = tile % tiles_c * kBTile;
  const int64_t s_begin = blockIdx.y * s_chunk;
  const int64_t s_end = s_begin + s_chunk < red ? s_begin + s_chunk : red;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * kBTile + tx;
  const int64_t e_off = b * rows * red;  // grad/kernel are (N, n, m)
  const scalar_t* zb = z + b * red * cols;
  const scalar_t* wb = w + b * rows * cols;
  // Read E along whichever of r/s is contiguous in memory.
  const bool s_fast = s_stride == 1;

  acc_t acc[kBRowsPerThread] = {};
  acc_t rsum[kBRowsPerThread] = {};
  for (int64_t s0 = s_begin; s0 < s_end; s0 += kBTile) {
    for (int l = tid; l < kBTile * kBTile; l += kBTile * 8) {
      const int fast = l % kBTile, slow = l / kBTile;
      const int r = s_fast ? slow : fast, s = s_fast ? fast : slow;
      acc_t e = 0;
      if (r0 + r < rows && s0 + s < s_end) {
        const int64_t idx = e_off + (r0 + r) * r_stride + (s0 + s) * s_stride;
        e = static_cast<acc_t>(grad[idx]) * kernel[idx];
      }
      es[r][s] = e;
      const int cs = l % kBTile, ss = l / kBTile;
      zs[ss][cs] = (s0 + ss < s_end && c0 + cs < cols)
                       ? static_cast<acc_t>(zb[(s0 + ss) * cols + c0 + cs])
                       : acc_t(0);
    }
    __syncthreads();
#pragma unroll 8
    for (int s = 0; s < kBTile; ++s) {
      const acc_t zv = zs[s][tx];
#pragma unroll
      for (int p = 0; p < kBRowsPerThread; ++p) {
        const acc_t e = es[ty + p * 8][s];
        acc[p] += e * zv;
        rsum[p] += e;
      }
    }
    __syncthreads();
  }
  const int64_t c = c0 + tx;
  if (c >= cols) return;
#pragma unroll
  for (int p = 0; p < kBRowsPerThread; ++p) {
    const int64_t r = r0 + ty + p * 8;
    if (r < rows)
      partial[((blockIdx.y * batch + b) * rows + r) * cols + c] =
          acc[p] - rsum[p] * static_cast<acc_t>(wb[r * cols + c]);
  }
}

// ---------------------------------------------------------------------------
// Newton iteration, one block per (batch, head) matrix, all steps in shared
// memory (m <= kNewtonSmemMaxM): P = B + ridge I, V = alpha P, then
// V <- 2V - (V P) V. Rows are padded to m + 1 to spread the banks. Each
// thread owns at most kNewtonPerThread entries of the m x m result.
constexpr int kNewtonThreads = 256;
constexpr int kNewtonPerThread =
    (kNewtonSmemMaxM * kNewtonSmemMaxM + kNewtonThreads - 1) / kNewtonThreads;

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kNewtonThreads)
    newton_inverse_kernel(const scalar_t* __restrict__ mat,
                          acc_t* __restrict__ out, int m, int iters,
                          acc_t ridge) {
  extern __shared__ unsigned char smem_raw[];
  acc_t* p = reinterpret_cast<acc_t*>(smem_raw);
  const int ld = m + 1;
  acc_t* v = p + m * ld;
  acc_t* vp = v + m * ld;
  __shared__ acc_t row_sum[kNewtonSmemMaxM];
  const int tid = threadIdx.x;
  const int mm = m * m;
  const scalar_t* src = mat + static_cast<int64_t>(blockIdx.x) * mm;
  for (int idx = tid; idx < mm; idx += kNewtonThreads)
    p[idx / m * ld + idx % m] = static_cast<acc_t>(src[idx]);
  __syncthreads();
  if (tid < m) {
    acc_t s = 0;
    for (int j = 0; j < m; ++j) s += fabs(p[tid * ld + j]);
    row_sum[tid] = s;
  }
  __syncthreads();
  acc_t max_row = 0;
  for (int i = 0; i < m; ++i) max_row = fmax(max_row, row_sum[i]);
  const acc_t alpha = acc_t(kNewtonAlphaScale) / (max_row * max_row);
  for (int idx = tid; idx < mm; idx += kNewtonThreads) {
    const int i = idx / m, j = idx % m;
    const acc_t pij = p[i * ld + j] + (i == j ? ridge : acc_t(0));
    v[i * ld + j] = alpha * pij;
  }
  __syncthreads();
  if (tid < m) p[tid * ld + tid] += ridge;
  __syncthreads();
  for (int it = 0; it < iters; ++it) {
    for (int idx = tid; idx < mm; idx += kNewtonThreads) {
      const int i = idx / m, j = idx % m;
      acc_t s = 0;
      for (int k = 0; k < m; ++k) s += v[i * ld + k] * p[k * ld + j];
      vp[i * ld + j] = s;
    }
    __syncthreads();
    // (V P) V is read from V, so results wait in registers until all
    // threads are done reading.
    acc_t next[kNewtonPerThread];
#pragma unroll
    for (int t = 0; t < kNewtonPerThread; ++t) {
      const int idx = tid + t * kNewtonThreads;
      if (idx < mm) {
        const int i = idx / m, j = idx % m;
        acc_t s = 0;
        for (int k = 0; k < m; ++k) s += vp[i * ld + k] * v[k * ld + j];
        next[t] = acc_t(2) * v[i * ld + j] - s;
      }
    }
    __syncthreads();
#pragma unroll
    for (int t = 0; t < kNewtonPerThread; ++t) {
      const int idx = tid + t * kNewtonThreads;
      if (idx < mm) v[idx / m * ld + idx % m] = next[t];
    }
    __syncthreads();
  }
  acc_t* dst = out + static_cast<int64_t>(blockIdx.x) * mm;
  for (int idx = tid; idx < mm; idx += kNewtonThreads)
    dst[idx] = v[idx / m * ld + idx % m];
}

}  // namespace cuda
}  // namespace soft_mm
