// Copyright (c) soft_mm contributors. All rights reserved.
// Operator schemas and per-device registrations of the SOFT attention op.
//
//   soft_mm::gaussian_kernel(x, y)                   exp(-|x_i - y_j|^2 / 2)
//   soft_mm::gaussian_kernel_backward(g, x, y, k)    its input gradients
//   soft_mm::newton_inverse(mat, iters, ridge)       SOFT's Newton iteration
//   soft_mm::newton_inverse_backward(g, inv)         -V^T G V^T
//   soft_mm::soft_attention_forward(q, l, v, ...)    fused (A B^-1)(A^T V)
//   soft_mm::soft_attention_backward(...)            its input gradients
//   soft_mm::depthwise_conv2d_weight_grad(x, g, k)   weight gradient of the
//       local conv (a 'same' depthwise conv over a channels-last map)
//
// Kernels and the m x m work run in float32 (float64 for float64 inputs);
// gradients come back in that compute dtype. Autograd, fake (meta) kernels
// and dtype casts back to the inputs' dtypes are registered in Python
// (soft_mm/ops/ext.py).
#include <ATen/Parallel.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/extension.h>
#include <torch/library.h>

#include <set>
#include <vector>

#include "pytorch_cpp_helper.hpp"
#include "soft_attention_common.h"

namespace soft_mm {
namespace {

// Autocast has fall-through kernels for custom ops, so the ATen GEMMs called
// inside our kernels would be autocast to half/bfloat16 again: every kernel
// runs with the autocast keys excluded to keep its fp32 accumulation.
template <auto F>
struct NoAutocast;
template <typename R, typename... Args, R (*F)(Args...)>
struct NoAutocast<F> {
  static R call(Args... args) {
    c10::impl::ExcludeDispatchKeyGuard guard(c10::autocast_dispatch_keyset);
    return F(args...);
  }
};

using GaussianFn = Tensor (*)(const Tensor&, const Tensor&);
using GaussianBackwardFn = std::tuple<Tensor, Tensor> (*)(const Tensor&,
                                                          const Tensor&,
                                                          const Tensor&,
                                                          const Tensor&);
using NewtonFn = Tensor (*)(const Tensor&, int64_t, double);
// A Gaussian backward allowed to overwrite its (caller-owned) grad.
using GaussianBackwardConsumeFn = std::tuple<Tensor, Tensor> (*)(
    Tensor&, const Tensor&, const Tensor&, const Tensor&);

// For kernels that read E = grad * K on the fly and never form it (CUDA).
template <GaussianBackwardFn F>
std::tuple<Tensor, Tensor> backward_without_consuming(Tensor& grad,
                                                      const Tensor& x,
                                                      const Tensor& y,
                                                      const Tensor& kernel) {
  return F(grad, x, y, kernel);
}

void check_attention_inputs(const Tensor& q, const Tensor& landmarks,
                            const Tensor& v) {
  SOFT_CHECK_DIM(q, 4);
  SOFT_CHECK_DIM(landmarks, 4);
  SOFT_CHECK_DIM(v, 4);
  SOFT_CHECK_FLOAT(q);
  SOFT_CHECK_FLOAT(landmarks);
  SOFT_CHECK_FLOAT(v);
  TORCH_CHECK(q.device() == landmarks.device() && q.device() == v.device(),
              "soft_attention: q, landmarks and v must be on one device");
  TORCH_CHECK(q.size(0) == landmarks.size(0) && q.size(0) == v.size(0) &&
                  q.size(1) == landmarks.size(1) && q.size(1) == v.size(1),
              "soft_attention: q, landmarks and v must share (B, h)");
  TORCH_CHECK(q.size(3) == landmarks.size(3),
              "soft_attention: q and landmarks must share d");
  TORCH_CHECK(q.size(2) == v.size(2), "soft_attention: q and v must share n");
  TORCH_CHECK(landmarks.size(2) >= 1,
              "soft_attention: at least one landmark is needed");
}

// The degree-normalised inverse W = s_i V_ij s_j with s = rowsum(B)^-1/2.
Tensor normalised(const Tensor& inv, const Tensor& deg_isqrt) {
  return deg_isqrt.unsqueeze(2) * inv * deg_isqrt.unsqueeze(1);
}

// Fused forward, written once over the device's kernels. With A = K(Q, L),
// W = NewtonInv(K(L, L)) (optionally normalised) and C = A^T V, the output
// A (W C) is associated so that no n x m product other than A is formed.
// Returns (out, A, K(L, L), NewtonInv, C); all but out are saved for the
// backward.
template <GaussianFn Gaussian, NewtonFn Newton>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> soft_attention_forward_impl(
    const Tensor& q, const Tensor& landmarks, const Tensor& v, int64_t iters,
    bool norm) {
  check_attention_inputs(q, landmarks, v);
  const auto dtype = compute_dtype({q, landmarks, v});
  const int64_t batch = q.size(0) * q.size(1), n = q.size(2),
                m = landmarks.size(2), d = q.size(3), e = v.size(3);
  const Tensor q3 = q.reshape({batch, n, d}).to(dtype);
  const Tensor l3 = landmarks.reshape({batch, m, d}).to(dtype);
  const Tensor v3 = v.reshape({batch, n, e}).to(dtype);
  const Tensor kernel_ql = Gaussian(q3, l3);
  const Tensor kernel_ll = Gaussian(l3, l3);
  const Tensor inv = Newton(kernel_ll, iters, kNewtonRidge);
  const Tensor weights =
      norm ? normalised(inv, kernel_ll.sum(2).rsqrt()) : inv;
  const Tensor context = at::bmm(kernel_ql.transpose(1, 2), v3);
  const Tensor out = at::bmm(kernel_ql, at::bmm(weights, context));
  return {out.view({q.size(0), q.size(1), n, e}).to(v.scalar_type()),
          kernel_ql, kernel_ll, inv, context};
}

// Backward of the fused op. With G = dL/dout, T = A^T G and WC = W C:
//   dC = W^T T,  dW = T C^T,  dA = G (WC)^T + V dC^T,  dV = A dC;
// SOFT-Norm adds ds_i = sum_j dW_ij V_ij s_j + dW_ji V_ji s_j, reaching B
// through its row sums; the Newton inverse contributes -V^T dV' V^T and the
// two Gaussian kernels their own backward. Gradients are in the compute
// dtype, shaped like the inputs. dA is the only n x m temporary: the n x m
// Gaussian backward (ConsumeBackward) may turn it into E = dA * A in place.
template <GaussianBackwardFn GaussianBackward,
          GaussianBackwardConsumeFn ConsumeBackward>
std::tuple<Tensor, Tensor, Tensor> soft_attention_backward_impl(
    const Tensor& grad_out, const Tensor& q, const Tensor& landmarks,
    const Tensor& v, const Tensor& kernel_ql, const Tensor& kernel_ll,
    const Tensor& inv, const Tensor& context, bool norm) {
  check_attention_inputs(q, landmarks, v);
  const auto dtype = kernel_ql.scalar_type();
  const int64_t batch = q.size(0) * q.size(1), n = q.size(2),
                m = landmarks.size(2), d = q.size(3), e = v.size(3);
  const Tensor q3 = q.reshape({batch, n, d}).to(dtype);
  const Tensor l3 = landmarks.reshape({batch, m, d}).to(dtype);
  const Tensor v3 = v.reshape({batch, n, e}).to(dtype);
  const Tensor g3 = grad_out.reshape({batch, n, e}).to(dtype);
  const Tensor deg_isqrt = norm ? kernel_ll.sum(2).rsqrt() : Tensor();
  const Tensor weights = norm ? normalised(inv, deg_isqrt) : inv;

  const Tensor t = at::bmm(kernel_ql.transpose(1, 2), g3);      // m x e
  const Tensor d_context = at::bmm(weights.transpose(1, 2), t);  // m x e
  const Tensor d_weights = at::bmm(t, context.transpose(1, 2));  // m x m
  Tensor d_kernel_ql = at::bmm(g3, at::bmm(weights, context).transpose(1, 2));
  d_kernel_ql.baddbmm_(v3, d_context.transpose(1, 2));
  const Tensor grad_v = at::bmm(kernel_ql, d_context);

  Tensor d_kernel_ll;
  if (norm) {
    const Tensor d_inv = normalised(d_weights, deg_isqrt);
    const Tensor gv = d_weights * inv;
    const Tensor s = deg_isqrt.unsqueeze(2);
    const Tensor d_s = (at::bmm(gv, s) + at::bmm(gv.transpose(1, 2), s));
    // s = r^-1/2 with r = rowsum(B): dr = -s^3 / 2 * ds, broadcast over j.
    const Tensor d_rowsum = d_s.mul_(s.pow(3)).mul_(-0.5);
    d_kernel_ll = newton_inverse_backward_aten(d_inv, inv).add_(d_rowsum);
  } else {
    d_kernel_ll = newton_inverse_backward_aten(d_weights, inv);
  }
  auto [grad_q, grad_l] = ConsumeBackward(d_kernel_ql, q3, l3, kernel_ql);
  auto [grad_l1, grad_l2] = GaussianBackward(d_kernel_ll, l3, l3, kernel_ll);
  grad_l.add_(grad_l1).add_(grad_l2);
  return {grad_q.view(q.sizes()), grad_l.view(landmarks.sizes()),
          grad_v.view(v.sizes())};
}

Tensor newton_inverse_backward(const Tensor& grad, const Tensor& inv) {
  check_newton_input(inv);
  TORCH_CHECK(grad.sizes() == inv.sizes(),
              "newton_inverse_backward: grad and inv shapes differ");
  TORCH_CHECK(grad.device() == inv.device(),
              "newton_inverse_backward: grad and inv must be on one device");
  return newton_inverse_backward_aten(grad, inv);
}

template <GaussianBackwardFn F>
std::tuple<Tensor, Tensor> gaussian_backward_checked(const Tensor& grad,
                                                     const Tensor& x,
                                                     const Tensor& y,
                                                     const Tensor& kernel) {
  check_gaussian_inputs(x, y);
  TORCH_CHECK(kernel.dim() == 3 && kernel.size(0) == x.size(0) &&
                  kernel.size(1) == x.size(1) && kernel.size(2) == y.size(1),
              "gaussian_kernel_backward: kernel must be (N, n, m), got ",
              kernel.sizes());
  TORCH_CHECK(grad.sizes() == kernel.sizes(),
              "gaussian_kernel_backward: grad and kernel shapes differ");
  TORCH_CHECK(grad.device() == x.device() && kernel.device() == x.device(),
              "gaussian_kernel_backward: grad and kernel must be on x's "
              "device (",
              x.device(), "), got ", grad.device(), " and ", kernel.device());
  return F(grad, x, y, kernel);
}

// How many threads at::parallel_for used for `tasks` one-element tasks:
// 1 when the extension was compiled without the parallel backend's flags
// (e.g. OpenMP without -fopenmp, whose pragma is then silently ignored).
int64_t parallel_for_threads(int64_t tasks) {
  TORCH_CHECK(tasks >= 1, "parallel_for_threads: tasks must be >= 1");
  std::vector<int> ids(tasks, -1);
  at::parallel_for(0, tasks, 1, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) ids[i] = at::get_thread_num();
  });
  return static_cast<int64_t>(std::set<int>(ids.begin(), ids.end()).size());
}

}  // namespace
}  // namespace soft_mm

using namespace soft_mm;

TORCH_LIBRARY(soft_mm, m) {
  m.def("gaussian_kernel(Tensor x, Tensor y) -> Tensor");
  m.def(
      "gaussian_kernel_backward(Tensor grad, Tensor x, Tensor y, "
      "Tensor kernel) -> (Tensor, Tensor)");
  m.def("newton_inverse(Tensor mat, int iters=20, float ridge=0.01) -> Tensor");
  m.def("newton_inverse_backward(Tensor grad, Tensor inv) -> Tensor");
  m.def(
      "soft_attention_forward(Tensor q, Tensor landmarks, Tensor v, "
      "int iters=20, bool norm=False) -> "
      "(Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "soft_attention_backward(Tensor grad_out, Tensor q, Tensor landmarks, "
      "Tensor v, Tensor kernel_ql, Tensor kernel_ll, Tensor inv, "
      "Tensor context, bool norm) -> (Tensor, Tensor, Tensor)");
  m.def(
      "depthwise_conv2d_weight_grad(Tensor x, Tensor grad, int kernel_size) "
      "-> Tensor");
}

#define SOFT_REGISTER_DEVICE(KEY, GAUSS, GAUSS_BWD, GAUSS_BWD_CONSUME, NEWTON, \
                             DW_WGRAD)                                       \
  TORCH_LIBRARY_IMPL(soft_mm, KEY, m) {                                      \
    m.impl("gaussian_kernel", &NoAutocast<GAUSS>::call);                     \
    m.impl("gaussian_kernel_backward",                                       \
           &NoAutocast<gaussian_backward_checked<GAUSS_BWD>>::call);         \
    m.impl("newton_inverse", &NoAutocast<NEWTON>::call);                     \
    m.impl("newton_inverse_backward",                                        \
           &NoAutocast<newton_inverse_backward>::call);                      \
    m.impl("soft_attention_forward",                                         \
           &NoAutocast<soft_attention_forward_impl<GAUSS, NEWTON>>::call);   \
    m.impl("soft_attention_backward",                                        \
           &NoAutocast<soft_attention_backward_impl<GAUSS_BWD,               \
                                                    GAUSS_BWD_CONSUME>>::call); \
    m.impl("depthwise_conv2d_weight_grad", &NoAutocast<DW_WGRAD>::call);     \
  }

SOFT_REGISTER_DEVICE(CPU, gaussian_kernel_cpu, gaussian_kernel_backward_cpu,
                     gaussian_kernel_backward_consume_aten, newton_inverse_cpu,
                     depthwise_conv2d_weight_grad_cpu)
#ifdef WITH_CUDA
SOFT_REGISTER_DEVICE(
    CUDA, gaussian_kernel_cuda, gaussian_kernel_backward_cuda,
    backward_without_consuming<gaussian_kernel_backward_cuda>,
    newton_inverse_cuda, depthwise_conv2d_weight_grad_aten)
#endif
#ifdef WITH_NPU
SOFT_REGISTER_DEVICE(PrivateUse1, gaussian_kernel_npu,
                     gaussian_kernel_backward_npu,
                     gaussian_kernel_backward_consume_aten, newton_inverse_npu,
                     depthwise_conv2d_weight_grad_aten)
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "soft_mm SOFT attention kernels (ops are in torch.ops.soft_mm)";
  m.def("get_cpu_isa", &cpu::get_cpu_isa,
        "Instruction set of the active CPU kernels");
  m.def("set_cpu_isa", &cpu::set_cpu_isa, "Select 'base' or 'avx2' CPU kernels");
  m.def("parallel_for_threads", &parallel_for_threads,
        "Threads at::parallel_for used for n tasks (CPU kernels' parallelism)");
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
#ifdef WITH_NPU
  m.attr("with_npu") = true;
#else
  m.attr("with_npu") = false;
#endif
  // The ATen-only path (NPU, CUDA fallback), exposed so CPU tests cover it.
  m.def("gaussian_kernel_aten", &gaussian_kernel_aten);
  m.def("gaussian_kernel_backward_aten", &gaussian_kernel_backward_aten);
  m.def("newton_inverse_aten", &newton_inverse_aten);
  m.def("depthwise_conv2d_weight_grad_aten",
        &depthwise_conv2d_weight_grad_aten);
}
