// Copyright (c) soft_mm contributors. All rights reserved.
// Launchers of the CUDA kernels (common/cuda/soft_attention_cuda_kernel.cuh).
// c10/cuda only (not ATen/cuda/CUDAContext.h, which pulls in the cuBLAS and
// cuSPARSE headers), so a bare nvcc toolkit can compile this file.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <limits>
#include <type_traits>

#include "cuda/soft_attention_cuda_kernel.cuh"
#include "pytorch_cpp_helper.hpp"

namespace soft_mm {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void check_cuda(const Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
}

}  // namespace

Tensor gaussian_kernel_cuda(const Tensor& x, const Tensor& y) {
  check_gaussian_inputs(x, y);
  check_cuda(x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const auto acc_dtype = compute_dtype({x, y});
  // Kernels read both inputs in one dtype (the wider one if they differ).
  const auto in_dtype = at::promote_types(x.scalar_type(), y.scalar_type());
  const Tensor xc = x.to(in_dtype).contiguous();
  const Tensor yc = y.to(in_dtype).contiguous();
  const int64_t batch = x.size(0), n = x.size(1), m = y.size(1),
                d = x.size(2);
  Tensor out = at::empty({batch, n, m}, xc.options().dtype(acc_dtype));
  if (out.numel() == 0) return out;
  const int64_t tiles_n = ceil_div(n, cuda::kGTile),
                tiles_m = ceil_div(m, cuda::kGTile);
  const dim3 block(cuda::kGThreads, cuda::kGThreads);
  const dim3 grid(batch * tiles_n * tiles_m);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, in_dtype, "soft_mm::gaussian_kernel_cuda",
      [&] {
        using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>,
                                         double, float>;
        cuda::gaussian_forward_kernel<scalar_t, acc_t>
            <<<grid, block, 0, stream>>>(
                xc.const_data_ptr<scalar_t>(), yc.const_data_ptr<scalar_t>(),
                out.mutable_data_ptr<acc_t>(), n, m, d, tiles_n, tiles_m);
      });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

namespace {

// out = sum_s E[r, s] z[s] - rowsum(E)[r] w[r]; see gaussian_backward_kernel.
Tensor gaussian_backward_side(const Tensor& grad, const Tensor& kernel,
                              const Tensor& z, const Tensor& w, int64_t rows,
                              int64_t red, int64_t r_stride,
                              int64_t s_stride) {
  const int64_t batch = kernel.size(0), cols = w.size(2);
  if (batch == 0 || rows == 0 || cols == 0 || red == 0)
    return at::zeros({batch, rows, cols}, kernel.options());
  const int64_t tiles_r = ceil_div(rows, cuda::kBTile),
                tiles_c = ceil_div(cols, cuda::kBTile);
  const int64_t blocks = batch * tiles_r * tiles_c;
  // Split the reduction until the grid has a few blocks per SM.
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(
      &sms, cudaDevAttrMultiProcessorCount, kernel.get_device()));
  int64_t splits = std::max<int64_t>(1, ceil_div(4 * sms, blocks));
  splits = std::min<int64_t>(splits, ceil_div(red, 4 * cuda::kBTile));
  splits = std::max<int64_t>(std::min<int64_t>(splits, 65535), 1);
  const int64_t s_chunk =
      ceil_div(ceil_div(red, splits), cuda::kBTile) * cuda::kBTile;
  splits = std::max<int64_t>(1, ceil_div(red, s_chunk));
  Tensor partial = at::empty({splits, batch, rows, cols}, kernel.options());
  const dim3 block(cuda::kBTile, 8);
  const dim3 grid(blocks, splits);
  auto stream = c10::cuda::getCurrentCUDAStream();
  // Inputs arrive in the compute dtype (see gaussian_kernel_backward_cuda).
  AT_DISPATCH_FLOATING_TYPES(
      z.scalar_type(), "soft_mm::gaussian_kernel_backward_cuda", [&] {
        using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>,
                                         double, float>;
        cuda::gaussian_backward_kernel<scalar_t, acc_t>
            <<<grid, block, 0, stream>>>(
                grad.const_data_ptr<scalar_t>(),
                kernel.const_data_ptr<acc_t>(), z.const_data_ptr<scalar_t>(),
                w.const_data_ptr<scalar_t>(), partial.mutable_data_ptr<acc_t>(),
                rows, red, cols, r_stride, s_stride, tiles_r, tiles_c,
                s_chunk);
      });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return splits == 1 ? partial[0] : partial.sum(0);
}

}  // namespace

std::tuple<Tensor, Tensor> gaussian_kernel_backward_cuda(const Tensor& grad,
                                                         const Tensor& x,
                                                         const Tensor& y,
                                                         const Tensor& kernel) {
  check_cuda(x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const auto acc_dtype = kernel.scalar_type();
  TORCH_CHECK(acc_dtype == compute_dtype({x, y}),
              "gaussian_kernel_backward: kernel must be in the compute dtype");
  // grad, x and y are read in the compute dtype: grad arrives in it (it is
  // the gradient of the fp32/fp64 kernel), and x, y are only n x d.
  const auto in_dtype = acc_dtype;
  const Tensor g = grad.to(in_dtype).contiguous();
  const Tensor k = kernel.contiguous();
  const Tensor xc = x.to(in_dtype).contiguous();
  const Tensor yc = y.to(in_dtype).contiguous();
  const int64_t n = x.size(1), m = y.size(1);
  // dx: rows i (stride m in E), reduce over j; dy: rows j, reduce over i.
  Tensor gx = gaussian_backward_side(g, k, yc, xc, n, m, m, 1);
  Tensor gy = gaussian_backward_side(g, k, xc, yc, m, n, 1, m);
  return {gx, gy};
}

Tensor newton_inverse_cuda(const Tensor& mat, int64_t iters, double ridge) {
  check_newton_input(mat);
  check_cuda(mat, "mat");
  TORCH_CHECK(iters >= 0, "newton_inverse: iters must be >= 0, got ", iters);
  const int64_t m = mat.size(1);
  if (m > kNewtonSmemMaxM) {
    // Beyond the shared-memory kernel: 2 batched cuBLAS GEMMs per step.
    return newton_inverse_aten(mat, iters, ridge);
  }
  const c10::cuda::CUDAGuard guard(mat.device());
  const auto acc_dtype = compute_dtype({mat});
  const Tensor b = mat.contiguous();
  Tensor out = at::empty(b.sizes(), b.options().dtype(acc_dtype));
  const int64_t batch = b.size(0);
  if (batch == 0) return out;
  TORCH_CHECK(batch <= std::numeric_limits<int32_t>::max(),
              "newton_inverse: too many matrices");
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, b.scalar_type(),
      "soft_mm::newton_inverse_cuda", [&] {
        using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>,
                                         double, float>;
        const size_t smem = 3 * m * (m + 1) * sizeof(acc_t);
        auto kernel = cuda::newton_inverse_kernel<scalar_t, acc_t>;
        // float needs ~50 KB at m = 64, double ~100 KB: above the 48 KB
        // default, so opt in (sm_80/sm_90 allow 163/227 KB).
        C10_CUDA_CHECK(cudaFuncSetAttribute(
            kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
            static_cast<int>(smem)));
        kernel<<<batch, cuda::kNewtonThreads, smem, stream>>>(
            b.const_data_ptr<scalar_t>(), out.mutable_data_ptr<acc_t>(),
            static_cast<int>(m), static_cast<int>(iters),
            static_cast<acc_t>(ridge));
      });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace soft_mm
