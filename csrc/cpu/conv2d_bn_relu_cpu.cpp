// conv2d_bn_relu on the CPU. float32 NCHW on AVX-512, convolutions without a bias (torchvision's
// BasicConv2d), run the packed convolution (conv2d_relu_packed_avx512.*) with the eval-mode
// BatchNorm as a per-channel scale and shift in its store: the micro-kernel's last reduction
// block (or Winograd's output transform) writes relu(fma(sum, scale, shift)), torch's own
// x * alpha + beta. The weights are read in place as for conv2d_relu: no folded copy is written
// (at batch 1 that pass over the weights cost torchvision's GoogLeNet about a sixth of its
// forward), none is cached, and the scale and shift are recomputed from the BatchNorm's tensors
// on every call. Other dtypes and layouts, and a convolution with a bias (which cannot join the
// shift without changing results where sums overflow), take torch's composition.
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <vector>

#include "batch_norm_composite.h"
#include "common/op_checks.h"
#include "cpu/buffer_pool.h"
#include "cpu/conv2d_relu_packed_avx512.h"

namespace fastalex {
namespace cpu {
namespace {

const float* data_or_null(const at::Tensor& t) { return t.defined() ? t.const_data_ptr<float>() : nullptr; }

at::Tensor conv2d_bn_relu_cpu(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                              c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                              int64_t groups, const at::Tensor& running_mean, const at::Tensor& running_var,
                              const c10::optional<at::Tensor>& bn_weight, const c10::optional<at::Tensor>& bn_bias,
                              double eps) {
  const ConvGeometry g = check_conv2d_bn_relu(input, weight, bias, stride, padding, dilation, groups, running_mean,
                                              running_var, bn_weight, bn_bias, eps);
  check_float_dtype("conv2d_bn_relu", "input", input, /*half_ok=*/false);
  const bool has_bias = bias.has_value() && bias->defined();
  if (input.scalar_type() != at::kFloat || kernel_memory_format(input) != at::MemoryFormat::Contiguous || has_bias ||
      !packed_conv_enabled() || !packed_conv_supports(g)) {
    return conv2d_bn_relu_composite(input, weight, bias, stride, padding, dilation, groups, running_mean, running_var,
                                    bn_weight, bn_bias, eps);
  }
  const at::Tensor x = input.contiguous();
  at::Tensor y = pooled_empty({g.batch, g.out_channels, g.out_h, g.out_w}, x.options());
  if (y.numel() == 0) return y;
  auto contiguous = [](const c10::optional<at::Tensor>& t) {
    return t.has_value() && t->defined() ? t->contiguous() : at::Tensor();
  };
  const at::Tensor mean = running_mean.contiguous(), var = running_var.contiguous(), bw = contiguous(bn_weight),
                   bb = contiguous(bn_bias), w = weight.contiguous();
  std::vector<float> scale(g.out_channels), shift(g.out_channels);
  batch_norm_affine(g.out_channels, mean.const_data_ptr<float>(), var.const_data_ptr<float>(), data_or_null(bw),
                    data_or_null(bb), eps, scale.data(), shift.data());
  conv_planar_packed(x.const_data_ptr<float>(), w.const_data_ptr<float>(), shift.data(), y.mutable_data_ptr<float>(),
                     g, scale.data());
  return y;
}

}  // namespace
}  // namespace cpu
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CPU, m) {
  m.impl("conv2d_bn_relu", &fastalex::cpu::conv2d_bn_relu_cpu);
}
