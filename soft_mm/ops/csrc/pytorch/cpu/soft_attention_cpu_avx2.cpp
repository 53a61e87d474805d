// Copyright (c) soft_mm contributors. All rights reserved.
// The CPU micro-kernels compiled for AVX2 + FMA (chosen at run time only on
// CPUs that report both; see soft_attention_cpu.h).
#include "soft_attention_common.h"
#include "soft_attention_cpu.h"

#if SOFT_MM_CPU_AVX2
#pragma GCC push_options
#pragma GCC target("avx2,fma")
// ISO -std=c++20 turns contraction off; a * b + c must become an FMA here.
#pragma GCC optimize("fp-contract=fast")
#define SOFT_CPU_ISA avx2
#include "soft_attention_cpu_kernel.h"
#undef SOFT_CPU_ISA
#pragma GCC pop_options

namespace soft_mm {
namespace cpu {

const KernelTable& avx2_kernels() {
  static const KernelTable table{"avx2", avx2::gaussian_rows_f,
                                 avx2::gaussian_rows_d, avx2::newton_matrix_f,
                                 avx2::newton_matrix_d,
                                 avx2::depthwise_wgrad_rows_f,
                                 avx2::depthwise_wgrad_rows_d};
  return table;
}

}  // namespace cpu
}  // namespace soft_mm
#endif
