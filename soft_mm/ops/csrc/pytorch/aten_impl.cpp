// Copyright (c) soft_mm contributors. All rights reserved.
// Device-agnostic pieces of the SOFT attention op, built from ATen ops only.
//
// They serve three purposes: the Ascend (PrivateUse1) path, which may only
// use ops torch_npu implements; the CUDA fallback of the Newton iteration
// for m > kNewtonSmemMaxM (batched cuBLAS); and the analytic backward of the
// Newton inverse, two batched GEMMs on every device.
#include "pytorch_cpp_helper.hpp"
#include "soft_attention_common.h"

namespace soft_mm {

at::ScalarType compute_dtype(std::initializer_list<Tensor> tensors) {
  for (const auto& t : tensors) {
    if (t.scalar_type() == at::kDouble) return at::kDouble;
  }
  return at::kFloat;
}

void check_gaussian_inputs(const Tensor& x, const Tensor& y) {
  SOFT_CHECK_DIM(x, 3);
  SOFT_CHECK_DIM(y, 3);
  SOFT_CHECK_FLOAT(x);
  SOFT_CHECK_FLOAT(y);
  TORCH_CHECK(x.device() == y.device(),
              "gaussian_kernel: x and y must be on one device, got ",
              x.device(), " and ", y.device());
  TORCH_CHECK(x.size(0) == y.size(0) && x.size(2) == y.size(2),
              "gaussian_kernel: x (N, n, d) and y (N, m, d) must share N and "
              "d, got ",
              x.sizes(), " and ", y.sizes());
}

void check_newton_input(const Tensor& mat) {
  SOFT_CHECK_DIM(mat, 3);
  SOFT_CHECK_FLOAT(mat);
  TORCH_CHECK(mat.size(1) == mat.size(2) && mat.size(1) >= 1,
              "newton_inverse: expects (N, m, m) matrices with m >= 1, got ",
              mat.sizes());
}

Tensor gaussian_kernel_aten(const Tensor& x, const Tensor& y) {
  check_gaussian_inputs(x, y);
  const auto dtype = compute_dtype({x, y});
  const Tensor xs = x.to(dtype), ys = y.to(dtype);
  const Tensor x_sq = xs.pow(2).sum(-1, /*keepdim=*/true);
  const Tensor y_sq = ys.pow(2).sum(-1, /*keepdim=*/true).transpose(1, 2);
  // exponent = x.y - |x|^2/2 - |y|^2/2, clamped at 0 (see gaussian_exponent).
  Tensor out = at::baddbmm((x_sq + y_sq).mul_(-0.5), xs, ys.transpose(1, 2));
  return out.clamp_max_(0).exp_();
}

std::tuple<Tensor, Tensor> gaussian_backward_from_product_aten(
    const Tensor& e, const Tensor& x, const Tensor& y) {
  // d exp(-|x-y|^2/2) / dx = K (y - x), so with E = G * K:
  //   dx = E y - rowsum(E) x,   dy = E^T x - colsum(E) y.
  // The GEMMs accumulate into the rowsum/colsum terms in place: one n x d
  // and one m x d allocation in all.
  const auto dtype = e.scalar_type();
  // Contiguous gradients whatever the inputs' strides (an element-wise
  // product would take x's layout): the fake kernel promises contiguous.
  const Tensor xs = x.to(dtype), ys = y.to(dtype);
  Tensor gx = at::empty(xs.sizes(), xs.options());
  at::mul_out(gx, xs, e.sum(2, /*keepdim=*/true));
  gx.baddbmm_(e, ys, /*beta=*/-1);
  Tensor gy = at::empty(ys.sizes(), ys.options());
  at::mul_out(gy, ys, e.sum(1).unsqueeze(2));
  gy.baddbmm_(e.transpose(1, 2), xs, /*beta=*/-1);
  return {gx, gy};
}

std::tuple<Tensor, Tensor> gaussian_kernel_backward_aten(const Tensor& grad,
                                                         const Tensor& x,
                                                         const Tensor& y,
                                                         const Tensor& kernel) {
  return gaussian_backward_from_product_aten(
      grad.to(kernel.scalar_type()) * kernel, x, y);
}

std::tuple<Tensor, Tensor> gaussian_kernel_backward_consume_aten(
    Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& kernel) {
  // E = grad * K formed in grad's own storage: no second n x m tensor.
  TORCH_INTERNAL_ASSERT(grad.scalar_type() == kernel.scalar_type());
  return gaussian_backward_from_product_aten(grad.mul_(kernel), x, y);
}

Tensor newton_inverse_aten(const Tensor& mat, int64_t iters, double ridge) {
  check_newton_input(mat);
  TORCH_CHECK(iters >= 0, "newton_inverse: iters must be >= 0, got ", iters);
  const Tensor b = mat.to(compute_dtype({mat}));
  // alpha = kNewtonAlphaScale / (max_i sum_j |B_ij|)^2, per matrix, from B.
  const Tensor max_row = b.abs().sum(2).amax(1);
  const Tensor alpha = (max_row.pow(2).reciprocal() * kNewtonAlphaScale)
                           .view({-1, 1, 1});
  const Tensor p =
      b + at::eye(b.size(1), b.options()).mul_(ridge).unsqueeze(0);
  Tensor v = alpha * p;
  Tensor vp = at::empty_like(v), next = at::empty_like(v);
  for (int64_t i = 0; i < iters; ++i) {
    at::bmm_out(vp, v, p);
    // next = 2 v - (v p) v
    at::baddbmm_out(next, v, vp, v, /*beta=*/2, /*alpha=*/-1);
    std::swap(v, next);
  }
  return v;
}

Tensor newton_inverse_backward_aten(const Tensor& grad, const Tensor& inv) {
  // The iterate is treated as the exact inverse: dB = -V^T G V^T.
  const Tensor inv_t = inv.transpose(1, 2);
  return at::bmm(at::bmm(inv_t, grad.to(inv.scalar_type())), inv_t).neg_();
}

void check_depthwise_inputs(const Tensor& x, const Tensor& grad,
                            int64_t kernel_size) {
  SOFT_CHECK_DIM(x, 4);
  SOFT_CHECK_FLOAT(x);
  SOFT_CHECK_FLOAT(grad);
  TORCH_CHECK(grad.sizes() == x.sizes(),
              "depthwise_conv2d_weight_grad: grad must have x's shape (B, H, "
              "W, C) ",
              x.sizes(), ", got ", grad.sizes());
  TORCH_CHECK(grad.device() == x.device(),
              "depthwise_conv2d_weight_grad: x and grad must be on one "
              "device, got ",
              x.device(), " and ", grad.device());
  TORCH_CHECK(kernel_size >= 1 && kernel_size % 2 == 1,
              "depthwise_conv2d_weight_grad: kernel_size must be odd and >= "
              "1, got ",
              kernel_size);
}

Tensor depthwise_conv2d_weight_grad_aten(const Tensor& x, const Tensor& grad,
                                         int64_t kernel_size) {
  check_depthwise_inputs(x, grad, kernel_size);
  const auto dtype = compute_dtype({x, grad});
  const int64_t c_len = x.size(3), k = kernel_size, pad = k / 2;
  const Tensor weight = at::empty({c_len, 1, k, k}, x.options().dtype(dtype));
  auto grads = at::convolution_backward(
      grad.to(dtype).permute({0, 3, 1, 2}), x.to(dtype).permute({0, 3, 1, 2}),
      weight, c10::nullopt, {1, 1}, {pad, pad}, {1, 1}, false, {0, 0}, c_len,
      {false, true, false});
  return std::get<1>(grads).view({c_len, k, k});
}

}  // namespace soft_mm
