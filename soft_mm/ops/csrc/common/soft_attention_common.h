// Copyright (c) soft_mm contributors. All rights reserved.
// Scalar helpers shared by the CPU and CUDA kernels of the SOFT attention op.
// Everything here is header-only and usable from host and device code.
#pragma once

#ifdef __CUDACC__
#define SOFT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SOFT_HOST_DEVICE inline
#endif

namespace soft_mm {

// The Newton step size is alpha = kNewtonAlphaScale / (max row sum)^2, i.e.
// 0.9 * 2 / ||B||_inf^2 as in the released SOFT code (docs/design.md,
// "Newton inverse and its gradient"). Every C++ kernel uses this constant;
// soft_mm/ops/reference.py's NEWTON_ALPHA_SCALE must equal it (and
// kNewtonRidge its NEWTON_RIDGE): tests/test_ops checks both through the
// compiled op at iters = 0 and 1.
constexpr double kNewtonAlphaScale = 1.8;
// Ridge of the Newton iteration: it inverts B + kNewtonRidge * I.
constexpr double kNewtonRidge = 0.01;

// Largest landmark count the single-launch shared-memory Newton kernel takes;
// larger m falls back to a batched-GEMM loop.
constexpr int kNewtonSmemMaxM = 64;
// Largest landmark count the CPU register-blocked Newton kernel takes. Above
// it MKL's batched GEMMs win (2-core AVX2 EPYC, 20 steps: 1.3 vs 1.7 ms for
// 4 x 64x64, 3.0 vs 4.0 ms at 96, 38 vs 67 ms at 4 x 256x256), so larger m
// uses newton_inverse_aten.
constexpr int kNewtonCpuMaxM = 64;

// Epilogue of the Gaussian kernel from the dot-product identity
//   exp(-0.5 ||x - y||^2) = exp(x.y - 0.5 |x|^2 - 0.5 |y|^2).
// The exponent is clamped at 0: rounding can make the distance slightly
// negative for (near-)equal points, and a true distance never is. Written so
// that a NaN passes through (NaN > 0 is false), as in the reference; the
// form `e < 0 ? e : 0` (or fminf) would turn NaN inputs into K = 1.
template <typename acc_t>
SOFT_HOST_DEVICE acc_t gaussian_exponent(acc_t dot, acc_t x_sq, acc_t y_sq) {
  const acc_t e = dot - acc_t(0.5) * (x_sq + y_sq);
  return e > acc_t(0) ? acc_t(0) : e;
}

}  // namespace soft_mm
