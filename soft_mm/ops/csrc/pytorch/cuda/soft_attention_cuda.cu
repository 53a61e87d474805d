// Copyright (c) soft_mm contributors. All rights reserved.
// Launchers of the CUDA kernels (common/cuda/soft_attention_cuda_kernel.cuh).
// c10/cuda only (not ATen/cuda/CUDAContext.h, which pulls in the cuBLAS and
// cuSPARSE headers), so a bare nvcc toolkit can compile this file.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAMacros.h>
#include <c10/cuda/CUDAStream.h>

#include <limits>
#include <mutex>
#include <type_traits>

#include "cuda/soft_attention_cuda_kernel.cuh"
#include "pytorch_cpp_helper.hpp"

namespace soft_mm {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void check_cuda(const Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
}

// Grids are 1-D (or 2-D with a small y) and counted in 32 bits.
void check_grid(int64_t blocks, const char* op) {
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), op,
              ": the input is too large for one launch (", blocks,
              " blocks)");
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
  check_grid(batch * tiles_n * tiles_m, "gaussian_kernel");
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
  check_grid(blocks, "gaussian_kernel_backward");
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
  TORCH_CHECK(grad.device() == x.device() && kernel.device() == x.device(),
              "gaussian_kernel_backward: grad and kernel must be on x's "
              "device");
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

namespace {

// Dynamic shared memory of the Newton kernel for m x m matrices: P, V and
// VP with rows padded to m + 1.
template <typename acc_t>
size_t newton_smem_bytes(int64_t m) {
  return 3 * m * (m + 1) * sizeof(acc_t);
}

// Dynamic shared memory the Newton kernel for acc_t may use on `device`:
// opted in once per device (and acc_t) for the largest m the kernel takes,
// capped by the device's per-block opt-in limit minus the kernel's static
// shared memory. Setting the attribute per call would let two host threads
// with different m race between one's cudaFuncSetAttribute and its launch.
template <typename scalar_t, typename acc_t>
size_t newton_smem_limit(int device) {
  static std::once_flag once[C10_COMPILE_TIME_MAX_GPUS];
  static size_t limit[C10_COMPILE_TIME_MAX_GPUS];
  TORCH_CHECK(device >= 0 && device < C10_COMPILE_TIME_MAX_GPUS,
              "newton_inverse: bad CUDA device index ", device);
  std::call_once(once[device], [device] {
    auto kernel = cuda::newton_inverse_kernel<scalar_t, acc_t>;
    int optin = 0;
    C10_CUDA_CHECK(cudaDeviceGetAttribute(
        &optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    cudaFuncAttributes attr{};
    C10_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
    const size_t wanted = newton_smem_bytes<acc_t>(kNewtonSmemMaxM);
    const size_t available =
        static_cast<size_t>(optin) > attr.sharedSizeBytes
            ? static_cast<size_t>(optin) - attr.sharedSizeBytes
            : 0;
    const size_t granted = std::min(wanted, available);
    // float needs ~50 KB at m = 64, double ~100 KB: above the 48 KB default
    // (sm_80 / sm_90 allow 163 / 227 KB per block).
    C10_CUDA_CHECK(cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
        static_cast<int>(granted)));
    limit[device] = granted;
  });
  return limit[device];
}

}  // namespace

Tensor newton_inverse_cuda(const Tensor& mat, int64_t iters, double ridge) {
  check_newton_input(mat);
  check_cuda(mat, "mat");
  TORCH_CHECK(iters >= 0, "newton_inverse: iters must be >= 0, got ", iters);
  TORCH_CHECK(iters <= std::numeric_limits<int32_t>::max(),
              "newton_inverse: iters too large: ", iters);
  const int64_t m = mat.size(1);
  if (m > kNewtonSmemMaxM) {
    // Beyond the shared-memory kernel: 2 batched cuBLAS GEMMs per step.
    return newton_inverse_aten(mat, iters, ridge);
  }
  const c10::cuda::CUDAGuard guard(mat.device());
  const auto acc_dtype = compute_dtype({mat});
  const Tensor b = mat.contiguous();
  const int64_t batch = b.size(0);
  TORCH_CHECK(batch <= std::numeric_limits<int32_t>::max(),
              "newton_inverse: too many matrices");
  Tensor out;  // stays undefined if the matrices do not fit on chip
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, b.scalar_type(),
      "soft_mm::newton_inverse_cuda", [&] {
        using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>,
                                         double, float>;
        const size_t smem = newton_smem_bytes<acc_t>(m);
        if (smem > newton_smem_limit<scalar_t, acc_t>(b.get_device())) return;
        out = at::empty(b.sizes(), b.options().dtype(acc_dtype));
        if (batch == 0) return;
        cuda::newton_inverse_kernel<scalar_t, acc_t>
            <<<batch, cuda::kNewtonThreads, smem, stream>>>(
                b.const_data_ptr<scalar_t>(), out.mutable_data_ptr<acc_t>(),
                static_cast<int>(m), static_cast<int>(iters),
                static_cast<acc_t>(ridge));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  // Devices with less shared memory per block (e.g. sm_75 in float64).
  return out.defined() ? out : newton_inverse_aten(mat, iters, ridge);
}

}  // namespace soft_mm
