// Copyright (c) soft_mm contributors. All rights reserved.
// CPU implementation of the SOFT attention kernels: the fused Gaussian
// kernel (distance + exp in one pass) and the batched Newton iteration.
#include <ATen/Parallel.h>
#include <math.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "pytorch_cpp_helper.hpp"
#include "soft_attention_common.h"
#include "soft_attention_cpu.h"

// The kernels pass 32-byte GCC vectors between inline functions; without
// AVX that is a (harmless, internal-only) ABI note that GCC warns about.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#define SOFT_CPU_ISA base
#include "soft_attention_cpu_kernel.h"
#undef SOFT_CPU_ISA
#pragma GCC diagnostic pop

namespace soft_mm {
namespace cpu {

const KernelTable& base_kernels() {
  static const KernelTable table{"base", base::gaussian_rows_f,
                                 base::gaussian_rows_d, base::newton_matrix_f,
                                 base::newton_matrix_d,
                                 base::depthwise_wgrad_rows_f,
                                 base::depthwise_wgrad_rows_d};
  return table;
}

namespace {

const KernelTable* best_kernels() {
#if SOFT_MM_CPU_AVX2
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return &avx2_kernels();
#endif
  return &base_kernels();
}

std::atomic<const KernelTable*>& active_table() {
  static std::atomic<const KernelTable*> table{best_kernels()};
  return table;
}

template <typename T>
struct Fns;
template <>
struct Fns<float> {
  static DepthwiseWgradFn<float> depthwise(const KernelTable& t) {
    return t.depthwise_wgrad_f;
  }
  static GaussianRowsFn<float> gaussian(const KernelTable& t) {
    return t.gaussian_rows_f;
  }
  static NewtonMatrixFn<float> newton(const KernelTable& t) {
    return t.newton_matrix_f;
  }
};
template <>
struct Fns<double> {
  static DepthwiseWgradFn<double> depthwise(const KernelTable& t) {
    return t.depthwise_wgrad_d;
  }
  static GaussianRowsFn<double> gaussian(const KernelTable& t) {
    return t.gaussian_rows_d;
  }
  static NewtonMatrixFn<double> newton(const KernelTable& t) {
    return t.newton_matrix_d;
  }
};

// Rows handed to one task of the thread pool.
constexpr int64_t kRowsPerTask = 64;

}  // namespace

const char* get_cpu_isa() { return active_table().load()->isa; }

bool set_cpu_isa(const std::string& isa) {
  if (isa == "base") {
    active_table().store(&base_kernels());
    return true;
  }
#if SOFT_MM_CPU_AVX2
  if (isa == "avx2" && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma")) {
    active_table().store(&avx2_kernels());
    return true;
  }
#endif
  return false;
}

}  // namespace cpu

Tensor gaussian_kernel_cpu(const Tensor& x, const Tensor& y) {
  check_gaussian_inputs(x, y);
  const auto dtype = compute_dtype({x, y});
  const Tensor xs = x.to(dtype).contiguous();
  const int64_t batch = x.size(0), n = x.size(1), m = y.size(1),
                d = x.size(2);
  Tensor out = at::empty({batch, n, m}, xs.options());
  if (out.numel() == 0) return out;
  const int64_t mp = cpu::padded(m);
  // Landmarks transposed to (d, mp) and zero-padded, so the inner loop reads
  // a fixed number of contiguous columns; their norms once per batch.
  const Tensor ys = y.to(dtype);
  Tensor yt = at::zeros({batch, d, mp}, xs.options());
  yt.narrow(2, 0, m).copy_(ys.transpose(1, 2));
  Tensor y_sq = at::zeros({batch, mp}, xs.options());
  y_sq.narrow(1, 0, m).copy_(ys.pow(2).sum(2));
  const int64_t tasks_per_batch = (n + cpu::kRowsPerTask - 1) /
                                  cpu::kRowsPerTask;
  const auto& table = *cpu::active_table().load();
  AT_DISPATCH_FLOATING_TYPES(dtype, "soft_mm::gaussian_kernel_cpu", [&] {
    const auto fn = cpu::Fns<scalar_t>::gaussian(table);
    const scalar_t* xp = xs.const_data_ptr<scalar_t>();
    const scalar_t* ytp = yt.const_data_ptr<scalar_t>();
    const scalar_t* ysp = y_sq.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, batch * tasks_per_batch, 1, [&](int64_t s, int64_t e) {
      for (int64_t t = s; t < e; ++t) {
        const int64_t b = t / tasks_per_batch;
        const int64_t r0 = (t % tasks_per_batch) * cpu::kRowsPerTask;
        const int64_t rows = std::min(cpu::kRowsPerTask, n - r0);
        fn(xp + (b * n + r0) * d, rows, d, ytp + b * d * mp, ysp + b * mp, m,
           mp, op + (b * n + r0) * m);
      }
    });
  });
  return out;
}

std::tuple<Tensor, Tensor> gaussian_kernel_backward_cpu(const Tensor& grad,
                                                        const Tensor& x,
                                                        const Tensor& y,
                                                        const Tensor& kernel) {
  // Two GEMMs (MKL/oneDNN) around one elementwise product: nothing left to
  // fuse that would pay for a hand-written kernel.
  return gaussian_kernel_backward_aten(grad, x, y, kernel);
}

Tensor newton_inverse_cpu(const Tensor& mat, int64_t iters, double ridge) {
  check_newton_input(mat);
  TORCH_CHECK(iters >= 0, "newton_inverse: iters must be >= 0, got ", iters);
  if (mat.size(1) > kNewtonCpuMaxM)
    return newton_inverse_aten(mat, iters, ridge);
  const auto dtype = compute_dtype({mat});
  const Tensor b = mat.to(dtype).contiguous();
  Tensor out = at::empty_like(b);
  const int64_t batch = b.size(0), m = b.size(1), mp = cpu::padded(m);
  if (batch == 0) return out;
  const auto& table = *cpu::active_table().load();
  AT_DISPATCH_FLOATING_TYPES(dtype, "soft_mm::newton_inverse_cpu", [&] {
    const auto fn = cpu::Fns<scalar_t>::newton(table);
    const scalar_t* bp = b.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    // One matrix per task: all steps run on an L1/L2-resident work buffer.
    at::parallel_for(0, batch, 1, [&](int64_t s, int64_t e) {
      std::vector<scalar_t> work(4 * mp * mp);
      for (int64_t i = s; i < e; ++i)
        fn(bp + i * m * m, m, mp, iters, ridge, work.data(), op + i * m * m);
    });
  });
  return out;
}

Tensor depthwise_conv2d_weight_grad_cpu(const Tensor& x, const Tensor& grad,
                                        int64_t kernel_size) {
  check_depthwise_inputs(x, grad, kernel_size);
  const int64_t batch = x.size(0), h_len = x.size(1), w_len = x.size(2),
                c_len = x.size(3), k = kernel_size;
  // mkldnn's depthwise weight gradient for the shapes it is better at.
  if (c_len % cpu::kColBlock != 0 || k < cpu::kDepthwiseMinKernel ||
      k > cpu::kDepthwiseMaxKernel)
    return depthwise_conv2d_weight_grad_aten(x, grad, kernel_size);
  const auto dtype = compute_dtype({x, grad});
  const int64_t rows = batch * h_len;
  const Tensor xs = x.to(dtype).contiguous();
  const Tensor gs = grad.to(dtype).contiguous();
  // One (k, k, C) partial sum per task, summed at the end: a fixed task
  // count (not the pool's chunking) keeps the result deterministic.
  const int64_t tasks = std::max<int64_t>(
      1, std::min<int64_t>(at::get_num_threads(), rows));
  Tensor partial = at::zeros({tasks, k, k, c_len}, xs.options());
  if (rows > 0) {
    const int64_t per_task = (rows + tasks - 1) / tasks;
    const auto& table = *cpu::active_table().load();
    AT_DISPATCH_FLOATING_TYPES(dtype, "soft_mm::depthwise_wgrad_cpu", [&] {
      const auto fn = cpu::Fns<scalar_t>::depthwise(table);
      const scalar_t* xp = xs.const_data_ptr<scalar_t>();
      const scalar_t* gp = gs.const_data_ptr<scalar_t>();
      scalar_t* pp = partial.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, tasks, 1, [&](int64_t s, int64_t e) {
        for (int64_t t = s; t < e; ++t) {
          const int64_t r0 = t * per_task;
          const int64_t r1 = std::min(rows, r0 + per_task);
          if (r0 < r1)
            fn(xp, gp, r0, r1, h_len, w_len, c_len, k,
               pp + t * k * k * c_len);
        }
      });
    });
  }
  return partial.sum(0).permute({2, 0, 1}).contiguous();
}

}  // namespace soft_mm
