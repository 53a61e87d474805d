// Copyright (c) soft_mm contributors. All rights reserved.
// Ascend (PrivateUse1) path, compiled only with WITH_NPU (FORCE_NPU=1).
//
// Only ATen ops that torch_npu implements are used (matmul/bmm, exp, sum,
// pow, clamp), and the m x m Newton work runs in float32 whatever the input
// dtype: no custom AscendC kernel is shipped.
#ifdef WITH_NPU
#include "pytorch_cpp_helper.hpp"

namespace soft_mm {

Tensor gaussian_kernel_npu(const Tensor& x, const Tensor& y) {
  return gaussian_kernel_aten(x, y);
}

std::tuple<Tensor, Tensor> gaussian_kernel_backward_npu(const Tensor& grad,
                                                        const Tensor& x,
                                                        const Tensor& y,
                                                        const Tensor& kernel) {
  return gaussian_kernel_backward_aten(grad, x, y, kernel);
}

Tensor newton_inverse_npu(const Tensor& mat, int64_t iters, double ridge) {
  return newton_inverse_aten(mat, iters, ridge);
}

}  // namespace soft_mm
#endif  // WITH_NPU
