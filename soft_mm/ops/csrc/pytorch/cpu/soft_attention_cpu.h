// Copyright (c) soft_mm contributors. All rights reserved.
// Table of the CPU micro-kernels, one instance per instruction set.
//
// The extension is compiled with the compiler's baseline flags, so the same
// kernel source (soft_attention_cpu_kernel.h) is compiled twice: once for
// the baseline and, with GCC on x86-64, once more with AVX2+FMA enabled for
// just those functions. The table is picked at run time from CPUID, the way
// ATen dispatches its own CPU kernels.
#pragma once

#include <cstdint>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SOFT_MM_CPU_AVX2 1
#else
#define SOFT_MM_CPU_AVX2 0
#endif

namespace soft_mm {
namespace cpu {

// Rows of exp(-|x - y|^2 / 2): x is (rows, d) row-major, yt the landmarks
// transposed and zero-padded to (d, mp), y_sq their squared norms (mp),
// out (rows, m) row-major.
template <typename T>
using GaussianRowsFn = void (*)(const T* x, int64_t rows, int64_t d,
                                const T* yt, const T* y_sq, int64_t m,
                                int64_t mp, T* out);
// All Newton steps for one m x m matrix; work holds 4 * mp * mp elements.
template <typename T>
using NewtonMatrixFn = void (*)(const T* mat, int64_t m, int64_t mp,
                                int64_t iters, double ridge, T* work, T* out);

// Rows [r0, r1) of a depthwise convolution's weight gradient (see
// depthwise_wgrad_rows in soft_attention_cpu_kernel.h).
template <typename T>
using DepthwiseWgradFn = void (*)(const T* x, const T* g, int64_t r0,
                                  int64_t r1, int64_t h_len, int64_t w_len,
                                  int64_t c_len, int64_t k, T* acc);

struct KernelTable {
  const char* isa;
  GaussianRowsFn<float> gaussian_rows_f;
  GaussianRowsFn<double> gaussian_rows_d;
  NewtonMatrixFn<float> newton_matrix_f;
  NewtonMatrixFn<double> newton_matrix_d;
  DepthwiseWgradFn<float> depthwise_wgrad_f;
  DepthwiseWgradFn<double> depthwise_wgrad_d;
};

const KernelTable& base_kernels();
#if SOFT_MM_CPU_AVX2
const KernelTable& avx2_kernels();
#endif

// Padding of the landmark dimension: a multiple of the widest vector (8
// floats) so inner loops have a fixed trip count and need no tail.
constexpr int64_t kColBlock = 8;
// Kernel sides the depthwise weight-gradient kernel takes (C must also be
// a multiple of kColBlock); others use mkldnn. 2-thread AMD EPYC, fp32:
// 8 x 56 x 56 x 64, k = 9: 2.4 vs 13.7 ms; 8 x 28 x 28 x 128, k = 5: 0.3 vs
// 2.9 ms; at k = 3 mkldnn is as fast or faster (8 x 14 x 14 x 320: 0.08 ms).
constexpr int64_t kDepthwiseMinKernel = 5;
constexpr int64_t kDepthwiseMaxKernel = 15;
inline int64_t padded(int64_t m) {
  return (m + kColBlock - 1) / kColBlock * kColBlock;
}

}  // namespace cpu
}  // namespace soft_mm
