// Argument checks and output shapes shared by every backend's host code, so that the CPU
// and CUDA kernels reject the same inputs with the same messages. Messages name the
// argument and what was expected; ValueError for bad values/shapes, TypeError for dtypes.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <array>
#include <cstdint>

namespace fastalex {

struct ConvGeometry {
  int64_t batch, in_channels, in_h, in_w;
  int64_t out_channels, kernel_h, kernel_w;
  int64_t stride_h, stride_w, pad_h, pad_w;
  int64_t dilation_h, dilation_w;
  int64_t groups;
  int64_t out_h, out_w;
};

struct PoolGeometry {
  int64_t batch, channels, in_h, in_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  int64_t dilation_h, dilation_w;
  int64_t out_h, out_w;
};

// The Inception op's channel counts (c1, c3 reduce, c3, c5 reduce, c5, pool projection) and
// its two k x k kernel sizes.
struct InceptionShape {
  int64_t c1, c3r, c3, c5r, c5, cp, k3, k5;
};

// TypeError unless t is float32/float64 (or, with half_ok, float16/bfloat16 too).
void check_float_dtype(const char* op, const char* arg, const at::Tensor& t, bool half_ok);

// (`op` names the op in the messages: conv2d_bn_relu checks its convolution with this.)
ConvGeometry check_conv2d_relu(const at::Tensor& input, const at::Tensor& weight,
                               const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                               c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                               const char* op = "conv2d_relu");
// conv2d_bn_relu: the convolution's arguments as conv2d_relu's, then the BatchNorm's:
// running_mean, running_var (and bn_weight, bn_bias when given) 1-D of the output channels,
// input's dtype and device; eps not negative (F.batch_norm's rule).
ConvGeometry check_conv2d_bn_relu(const at::Tensor& input, const at::Tensor& weight,
                                  const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                                  c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                                  const at::Tensor& running_mean, const at::Tensor& running_var,
                                  const c10::optional<at::Tensor>& bn_weight, const c10::optional<at::Tensor>& bn_bias,
                                  double eps);

void check_local_response_norm(const at::Tensor& input, int64_t size, double alpha, double beta,
                               double k);

// local_response_norm_backward: the LRN's arguments, and grad_output and output shaped, typed and
// placed like input.
void check_local_response_norm_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                        const at::Tensor& output, int64_t size, double alpha, double beta,
                                        double k);

PoolGeometry check_max_pool2d(const at::Tensor& input, c10::IntArrayRef kernel_size,
                              c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                              bool ceil_mode);

// max_pool2d_backward: max_pool2d's arguments, and grad_output of the pooled shape, typed and
// placed like input.
PoolGeometry check_max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                       c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                       c10::IntArrayRef padding, c10::IntArrayRef dilation, bool ceil_mode);

// The fused LRN + pooling ops (lrn_max_pool2d when lrn_first, else max_pool2d_lrn), every
// backend: a 4-D input named by the op, each part's arguments checked in the unfused pair's
// order (check_local_response_norm, check_max_pool2d without dilation), then the dtype (float16
// and bfloat16 with half_ok). Returns the pooling's geometry.
PoolGeometry check_lrn_pool(bool lrn_first, const at::Tensor& input, int64_t size, double alpha, double beta, double k,
                            c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                            bool ceil_mode, bool half_ok);

// input (N, in) x weight (out, in)^T + bias (out,): same dtype and device; returns out.
int64_t check_linear(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias);

// The layout a kernel works in: torch's suggestion for the input (channels_last when its
// strides look like NHWC), so the output matches the input's format as torch's ops do.
at::MemoryFormat kernel_memory_format(const at::Tensor& input);

// The Inception op's arguments: a 4-D input; each weight 4-D of the shape its branch needs
// ((out, in, 1, 1) for the 1x1 convolutions, square odd kernels for the k x k ones, whose
// inputs are the reduce outputs); each bias 1-D of its weight's output channels; one dtype and
// one device throughout. Errors name the argument.
InceptionShape check_inception(const at::Tensor& input, const at::Tensor& w1, const at::Tensor& b1,
                               const at::Tensor& w3_reduce, const at::Tensor& b3_reduce, const at::Tensor& w3,
                               const at::Tensor& b3, const at::Tensor& w5_reduce, const at::Tensor& b5_reduce,
                               const at::Tensor& w5, const at::Tensor& b5, const at::Tensor& w_pool,
                               const at::Tensor& b_pool);

// The six convolutions' shapes of an Inception op named `op`: w[i] and b[i] (biases, or
// anything that must hold one value per output channel) in the module's order, named by
// wnames[i] and bnames[i] in the messages.
InceptionShape check_inception_convs(const char* op, const at::Tensor& input, const at::Tensor* w, const at::Tensor* b,
                                     const char* const* wnames, const char* const* bnames);
// inception_bn: five lists of six tensors; the weights shaped as the Inception op's, each
// BatchNorm tensor 1-D of its convolution's output channels; one dtype and one device.
InceptionShape check_inception_bn(const at::Tensor& input, at::TensorList weights, at::TensorList running_means,
                                  at::TensorList running_vars, at::TensorList bn_weights, at::TensorList bn_biases,
                                  double eps);

}  // namespace fastalex
