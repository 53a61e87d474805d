// Copyright (c) soft_mm contributors. All rights reserved.
// Declarations shared by the binding file and the per-device sources.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <tuple>

#define SOFT_CHECK_DIM(x, n) \
  TORCH_CHECK((x).dim() == (n), #x " must be " #n "-D, got ", (x).dim(), "-D")
#define SOFT_CHECK_FLOAT(x)                                      \
  TORCH_CHECK(at::isFloatingType((x).scalar_type()),             \
              #x " must be a floating point tensor, got ", (x).scalar_type())

namespace soft_mm {

using at::Tensor;

// float64 if any input is float64, else float32: half and bfloat16 inputs
// are computed in float32 (the Newton iteration's error grows with cond(B)).
at::ScalarType compute_dtype(std::initializer_list<Tensor> tensors);

// ---- Shape checks shared by all devices (throw c10::Error). ----
void check_gaussian_inputs(const Tensor& x, const Tensor& y);
void check_newton_input(const Tensor& mat);

// ---- Device-agnostic implementations built from ATen ops only. ----
// Used by the NPU path, the CUDA fallback for large m and the backward of
// the Newton inverse on every device.
Tensor gaussian_kernel_aten(const Tensor& x, const Tensor& y);
std::tuple<Tensor, Tensor> gaussian_kernel_backward_aten(const Tensor& grad,
                                                         const Tensor& x,
                                                         const Tensor& y,
                                                         const Tensor& kernel);
// The same, given E = grad * kernel (in the compute dtype) directly.
std::tuple<Tensor, Tensor> gaussian_backward_from_product_aten(
    const Tensor& e, const Tensor& x, const Tensor& y);
// The same again for a grad the caller owns and no longer needs: E is
// formed in grad's storage (grad must be in kernel's dtype). The fused
// attention backward uses it to keep a single n x m temporary.
std::tuple<Tensor, Tensor> gaussian_kernel_backward_consume_aten(
    Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& kernel);
Tensor newton_inverse_aten(const Tensor& mat, int64_t iters, double ridge);
Tensor newton_inverse_backward_aten(const Tensor& grad, const Tensor& inv);
// Weight gradient (C, k, k) of a stride-1, k // 2-padded depthwise conv of
// the channels-last map x (B, H, W, C), given the output gradient grad.
void check_depthwise_inputs(const Tensor& x, const Tensor& grad,
                            int64_t kernel_size);
Tensor depthwise_conv2d_weight_grad_aten(const Tensor& x, const Tensor& grad,
                                         int64_t kernel_size);

// ---- CPU kernels (pytorch/cpu). ----
Tensor gaussian_kernel_cpu(const Tensor& x, const Tensor& y);
std::tuple<Tensor, Tensor> gaussian_kernel_backward_cpu(const Tensor& grad,
                                                        const Tensor& x,
                                                        const Tensor& y,
                                                        const Tensor& kernel);
Tensor newton_inverse_cpu(const Tensor& mat, int64_t iters, double ridge);
Tensor depthwise_conv2d_weight_grad_cpu(const Tensor& x, const Tensor& grad,
                                        int64_t kernel_size);
namespace cpu {
// Instruction set of the active CPU micro-kernels ("avx2" or "base"), and a
// switch for tests; set_cpu_isa returns false if the CPU lacks the ISA.
const char* get_cpu_isa();
bool set_cpu_isa(const std::string& isa);
}  // namespace cpu

#ifdef WITH_CUDA
// ---- CUDA kernels (pytorch/cuda). ----
Tensor gaussian_kernel_cuda(const Tensor& x, const Tensor& y);
std::tuple<Tensor, Tensor> gaussian_kernel_backward_cuda(const Tensor& grad,
                                                         const Tensor& x,
                                                         const Tensor& y,
                                                         const Tensor& kernel);
Tensor newton_inverse_cuda(const Tensor& mat, int64_t iters, double ridge);
#endif

#ifdef WITH_NPU
// ---- Ascend kernels (pytorch/npu), ATen ops supported by torch_npu. ----
Tensor gaussian_kernel_npu(const Tensor& x, const Tensor& y);
std::tuple<Tensor, Tensor> gaussian_kernel_backward_npu(const Tensor& grad,
                                                        const Tensor& x,
                                                        const Tensor& y,
                                                        const Tensor& kernel);
Tensor newton_inverse_npu(const Tensor& mat, int64_t iters, double ridge);
#endif

}  // namespace soft_mm
