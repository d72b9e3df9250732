#include "common/op_checks.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <initializer_list>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace fastalex {
namespace {

std::string dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Float: return "float32";
    case c10::ScalarType::Double: return "float64";
    case c10::ScalarType::Half: return "float16";
    case c10::ScalarType::BFloat16: return "bfloat16";
    default: return c10::toString(t);
  }
}

std::string shape_str(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

// Torch's pooling rule: floor (or ceil) of the window count, and with ceil_mode the last
// window must start inside the input or its left padding. A dilated window spans
// dilation * (k - 1) + 1 elements.
int64_t pooled_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation, bool ceil_mode) {
  int64_t num = in + 2 * pad - dilation * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t q = num >= 0 ? num / stride : -((-num + stride - 1) / stride);
  int64_t out = q + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

void check_pair(const char* op, const char* arg, c10::IntArrayRef v) {
  TORCH_CHECK_VALUE(v.size() == 2, "fastalex.", op, ": ", arg, " must have 2 elements (h, w), got ",
                    v.size());
}

// The LRN's arguments, for the forward and the backward op (named by `op` in messages).
void check_lrn_args(const char* op, const at::Tensor& input, int64_t size, double alpha, double beta, double k) {
  TORCH_CHECK_VALUE(input.dim() >= 3, "fastalex.", op, ": input must be 3-D or more (N, C, ...), got ", input.dim(),
                    "-D of shape ", shape_str(input));
  TORCH_CHECK_VALUE(size > 0, "fastalex.", op, ": size must be positive, got ", size);
  TORCH_CHECK_VALUE(std::isfinite(alpha) && std::isfinite(beta) && std::isfinite(k), "fastalex.", op,
                    ": alpha, beta and k must be finite, got alpha=", alpha, ", beta=", beta, ", k=", k);
}

PoolGeometry check_pool_args(const char* op, const at::Tensor& input, c10::IntArrayRef kernel_size,
                              c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                              bool ceil_mode) {
  TORCH_CHECK_VALUE(input.dim() == 4, "fastalex.", op, ": input must be 4-D (N, C, H, W), got ",
                    input.dim(), "-D of shape ", shape_str(input));
  check_pair(op, "kernel_size", kernel_size);
  check_pair(op, "stride", stride);
  check_pair(op, "padding", padding);
  check_pair(op, "dilation", dilation);
  TORCH_CHECK_VALUE(dilation[0] > 0 && dilation[1] > 0, "fastalex.", op, ": dilation must be positive, got (",
                    dilation[0], ", ", dilation[1], ")");
  TORCH_CHECK_VALUE(kernel_size[0] > 0 && kernel_size[1] > 0,
                    "fastalex.", op, ": kernel_size must be positive, got (", kernel_size[0], ", ",
                    kernel_size[1], ")");
  TORCH_CHECK_VALUE(stride[0] > 0 && stride[1] > 0, "fastalex.", op, ": stride must be positive, got (",
                    stride[0], ", ", stride[1], ")");
  TORCH_CHECK_VALUE(padding[0] >= 0 && padding[1] >= 0,
                    "fastalex.", op, ": padding must be non-negative, got (", padding[0], ", ",
                    padding[1], ")");
  TORCH_CHECK_VALUE(padding[0] <= kernel_size[0] / 2 && padding[1] <= kernel_size[1] / 2,
                    "fastalex.", op, ": padding (", padding[0], ", ", padding[1],
                    ") must be at most half of kernel_size (", kernel_size[0], ", ", kernel_size[1],
                    ")");
  PoolGeometry g{};
  g.batch = input.size(0);
  g.channels = input.size(1);
  g.in_h = input.size(2);
  g.in_w = input.size(3);
  TORCH_CHECK_VALUE(g.channels > 0 && g.in_h > 0 && g.in_w > 0,
                    "fastalex.", op, ": input must have non-zero C, H and W, got shape ",
                    shape_str(input));
  g.kernel_h = kernel_size[0];
  g.kernel_w = kernel_size[1];
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.dilation_h = dilation[0];
  g.dilation_w = dilation[1];
  g.out_h = pooled_size(g.in_h, g.kernel_h, g.pad_h, g.stride_h, g.dilation_h, ceil_mode);
  g.out_w = pooled_size(g.in_w, g.kernel_w, g.pad_w, g.stride_w, g.dilation_w, ceil_mode);
  TORCH_CHECK_VALUE(g.out_h > 0 && g.out_w > 0, "fastalex.", op, ": kernel_size (", g.kernel_h, ", ",
                    g.kernel_w, ") with dilation (", g.dilation_h, ", ", g.dilation_w,
                    ") is larger than the padded input (", g.in_h + 2 * g.pad_h, ", ", g.in_w + 2 * g.pad_w, ")");
  return g;
}

}  // namespace

void check_float_dtype(const char* op, const char* arg, const at::Tensor& t, bool half_ok) {
  auto s = t.scalar_type();
  bool ok = s == at::kFloat || s == at::kDouble ||
            (half_ok && (s == at::kHalf || s == at::kBFloat16));
  TORCH_CHECK_TYPE(ok, "fastalex.", op, ": ", arg, " has dtype ", dtype_name(s),
                   ", which is not supported on ", t.device().type(), " (expected ",
                   half_ok ? "float32, float64, float16 or bfloat16" : "float32 or float64",
                   ")");
}

at::MemoryFormat kernel_memory_format(const at::Tensor& input) {
  return input.dim() == 4 ? input.suggest_memory_format() : at::MemoryFormat::Contiguous;
}

ConvGeometry check_conv2d_relu(const at::Tensor& input, const at::Tensor& weight,
                               const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                               c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups, const char* op) {
  TORCH_CHECK_VALUE(input.dim() == 4, "fastalex.", op, ": input must be 4-D (N, C, H, W), got ",
                    input.dim(), "-D of shape ", shape_str(input));
  TORCH_CHECK_VALUE(weight.dim() == 4,
                    "fastalex.", op, ": weight must be 4-D (out_channels, in_channels / groups, "
                    "kH, kW), got ",
                    weight.dim(), "-D of shape ", shape_str(weight));
  TORCH_CHECK_VALUE(input.device() == weight.device(), "fastalex.", op, ": weight is on ",
                    weight.device(), " but input is on ", input.device(),
                    " (expected the same device)");
  TORCH_CHECK_TYPE(input.scalar_type() == weight.scalar_type(),
                   "fastalex.", op, ": weight has dtype ", dtype_name(weight.scalar_type()),
                   " but input has dtype ", dtype_name(input.scalar_type()),
                   " (expected the same dtype)");
  check_pair(op, "stride", stride);
  check_pair(op, "padding", padding);
  check_pair(op, "dilation", dilation);
  TORCH_CHECK_VALUE(stride[0] > 0 && stride[1] > 0,
                    "fastalex.", op, ": stride must be positive, got (", stride[0], ", ",
                    stride[1], ")");
  TORCH_CHECK_VALUE(dilation[0] > 0 && dilation[1] > 0,
                    "fastalex.", op, ": dilation must be positive, got (", dilation[0], ", ",
                    dilation[1], ")");
  TORCH_CHECK_VALUE(padding[0] >= 0 && padding[1] >= 0,
                    "fastalex.", op, ": padding must be non-negative, got (", padding[0], ", ",
                    padding[1], ")");
  TORCH_CHECK_VALUE(groups > 0, "fastalex.", op, ": groups must be positive, got ", groups);
  ConvGeometry g{};
  g.batch = input.size(0);
  g.in_channels = input.size(1);
  g.in_h = input.size(2);
  g.in_w = input.size(3);
  g.out_channels = weight.size(0);
  g.kernel_h = weight.size(2);
  g.kernel_w = weight.size(3);
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.dilation_h = dilation[0];
  g.dilation_w = dilation[1];
  g.groups = groups;
  TORCH_CHECK_VALUE(g.in_channels % groups == 0, "fastalex.", op, ": input has ", g.in_channels,
                    " channels, which is not divisible by groups=", groups);
  TORCH_CHECK_VALUE(g.out_channels > 0 && g.out_channels % groups == 0,
                    "fastalex.", op, ": weight has ", g.out_channels,
                    " output channels, expected a positive multiple of groups=", groups);
  TORCH_CHECK_VALUE(weight.size(1) * groups == g.in_channels, "fastalex.", op, ": weight of shape ",
                    shape_str(weight), " expects ", weight.size(1) * groups,
                    " input channels (weight.size(1) * groups), but input has ", g.in_channels);
  TORCH_CHECK_VALUE(g.kernel_h > 0 && g.kernel_w > 0,
                    "fastalex.", op, ": weight must have a non-empty kernel, got shape ",
                    shape_str(weight));
  TORCH_CHECK_VALUE(g.in_channels > 0, "fastalex.", op, ": input must have at least one channel");
  if (bias.has_value() && bias->defined()) {
    const auto& b = *bias;
    TORCH_CHECK_VALUE(b.dim() == 1 && b.size(0) == g.out_channels,
                      "fastalex.", op, ": bias must be 1-D of size ", g.out_channels,
                      " (out_channels), got shape ", shape_str(b));
    TORCH_CHECK_VALUE(b.device() == input.device(), "fastalex.", op, ": bias is on ", b.device(),
                      " but input is on ", input.device(), " (expected the same device)");
    TORCH_CHECK_TYPE(b.scalar_type() == input.scalar_type(), "fastalex.", op, ": bias has dtype ",
                     dtype_name(b.scalar_type()), " but input has dtype ",
                     dtype_name(input.scalar_type()), " (expected the same dtype)");
  }
  const int64_t padded_h = g.in_h + 2 * g.pad_h, padded_w = g.in_w + 2 * g.pad_w;
  // The dilated kernel's extent: dilation * (k - 1) + 1.
  const int64_t span_h = g.dilation_h * (g.kernel_h - 1) + 1, span_w = g.dilation_w * (g.kernel_w - 1) + 1;
  TORCH_CHECK_VALUE(span_h <= padded_h && span_w <= padded_w,
                    "fastalex.", op, ": kernel size (", g.kernel_h, ", ", g.kernel_w, ") with dilation (",
                    g.dilation_h, ", ", g.dilation_w, ") spans (", span_h, ", ", span_w,
                    "), larger than the padded input (", padded_h, ", ", padded_w, ")");
  g.out_h = (padded_h - span_h) / g.stride_h + 1;
  g.out_w = (padded_w - span_w) / g.stride_w + 1;
  return g;
}

int64_t check_linear(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK_VALUE(input.dim() == 2, "fastalex.linear: input must be 2-D (N, in_features), got ", input.dim(),
                    "-D of shape ", shape_str(input));
  TORCH_CHECK_VALUE(weight.dim() == 2, "fastalex.linear: weight must be 2-D (out_features, in_features), got ",
                    weight.dim(), "-D of shape ", shape_str(weight));
  TORCH_CHECK_VALUE(input.device() == weight.device(), "fastalex.linear: weight is on ", weight.device(),
                    " but input is on ", input.device(), " (expected the same device)");
  TORCH_CHECK_TYPE(input.scalar_type() == weight.scalar_type(), "fastalex.linear: weight has dtype ",
                   dtype_name(weight.scalar_type()), " but input has dtype ", dtype_name(input.scalar_type()),
                   " (expected the same dtype)");
  TORCH_CHECK_VALUE(weight.size(1) == input.size(1), "fastalex.linear: weight of shape ", shape_str(weight),
                    " expects ", weight.size(1), " input features (weight.size(1)), but input has ", input.size(1));
  const int64_t out = weight.size(0);
  if (bias.has_value() && bias->defined()) {
    const auto& b = *bias;
    TORCH_CHECK_VALUE(b.dim() == 1 && b.size(0) == out, "fastalex.linear: bias must be 1-D of size ", out,
                      " (out_features), got shape ", shape_str(b));
    TORCH_CHECK_VALUE(b.device() == input.device(), "fastalex.linear: bias is on ", b.device(), " but input is on ",
                      input.device(), " (expected the same device)");
    TORCH_CHECK_TYPE(b.scalar_type() == input.scalar_type(), "fastalex.linear: bias has dtype ",
                     dtype_name(b.scalar_type()), " but input has dtype ", dtype_name(input.scalar_type()),
                     " (expected the same dtype)");
  }
  return out;
}

void check_local_response_norm(const at::Tensor& input, int64_t size, double alpha, double beta,
                               double k) {
  check_lrn_args("local_response_norm", input, size, alpha, beta, k);
}

void check_local_response_norm_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                        const at::Tensor& output, int64_t size, double alpha, double beta,
                                        double k) {
  const char* op = "local_response_norm_backward";
  check_lrn_args(op, input, size, alpha, beta, k);
  const auto like_input = [&](const char* arg, const at::Tensor& t) {
    TORCH_CHECK_VALUE(t.sizes() == input.sizes(), "fastalex.", op, ": ", arg, " must have the input's shape ",
                      shape_str(input), ", got ", shape_str(t));
    TORCH_CHECK_TYPE(t.scalar_type() == input.scalar_type(), "fastalex.", op, ": ", arg, " has dtype ",
                     dtype_name(t.scalar_type()), " but input has dtype ", dtype_name(input.scalar_type()));
    TORCH_CHECK_VALUE(t.device() == input.device(), "fastalex.", op, ": ", arg, " is on ", t.device(),
                      " but input is on ", input.device());
  };
  like_input("grad_output", grad_output);
  like_input("output", output);
}

PoolGeometry check_lrn_pool(bool lrn_first, const at::Tensor& input, int64_t size, double alpha, double beta, double k,
                            c10::IntArrayRef kernel_size, c10::IntArrayRef stride, c10::IntArrayRef padding,
                            bool ceil_mode, bool half_ok) {
  const char* op = lrn_first ? "lrn_max_pool2d" : "max_pool2d_lrn";
  TORCH_CHECK_VALUE(input.dim() == 4, "fastalex.", op, ": input must be 4-D (N, C, H, W), got ", input.dim(),
                    "-D of shape ", shape_str(input));
  const int64_t no_dilation[2] = {1, 1};
  if (lrn_first) check_local_response_norm(input, size, alpha, beta, k);
  const PoolGeometry g = check_max_pool2d(input, kernel_size, stride, padding, no_dilation, ceil_mode);
  if (!lrn_first) check_local_response_norm(input, size, alpha, beta, k);
  check_float_dtype(op, "input", input, half_ok);
  return g;
}


PoolGeometry check_max_pool2d(const at::Tensor& input, c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                              c10::IntArrayRef padding, c10::IntArrayRef dilation, bool ceil_mode) {
  return check_pool_args("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode);
}

PoolGeometry check_max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                       c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                       c10::IntArrayRef padding, c10::IntArrayRef dilation, bool ceil_mode) {
  const char* op = "max_pool2d_backward";
  const PoolGeometry g = check_pool_args(op, input, kernel_size, stride, padding, dilation, ceil_mode);
  const std::vector<int64_t> want = {g.batch, g.channels, g.out_h, g.out_w};
  TORCH_CHECK_VALUE(grad_output.sizes() == c10::IntArrayRef(want), "fastalex.", op,
                    ": grad_output must have the pooled shape ", c10::IntArrayRef(want), ", got ",
                    shape_str(grad_output));
  TORCH_CHECK_TYPE(grad_output.scalar_type() == input.scalar_type(), "fastalex.", op, ": grad_output has dtype ",
                   dtype_name(grad_output.scalar_type()), " but input has dtype ", dtype_name(input.scalar_type()));
  TORCH_CHECK_VALUE(grad_output.device() == input.device(), "fastalex.", op, ": grad_output is on ",
                    grad_output.device(), " but input is on ", input.device());
  return g;
}

InceptionShape check_inception_convs(const char* op, const at::Tensor& input, const at::Tensor* w, const at::Tensor* b,
                                     const char* const* wnames, const char* const* bnames) {
  TORCH_CHECK_VALUE(input.dim() == 4, "fastalex.", op, ": input must be 4-D (N, C, H, W), got ", input.dim(),
                    "-D of shape ", shape_str(input));
  const int64_t C = input.size(1);
  for (int i = 0; i < 6; ++i) {
    const at::Tensor &cw = w[i], &cb = b[i];
    const char *wname = wnames[i], *bname = bnames[i];
    TORCH_CHECK_VALUE(cw.dim() == 4, "fastalex.", op, ": ", wname,
                      " must be 4-D (out_channels, in_channels, kH, kW), got ", cw.dim(), "-D of shape ",
                      shape_str(cw));
    TORCH_CHECK_VALUE(cw.size(0) > 0, "fastalex.", op, ": ", wname, " must have at least one output channel, got shape ",
                      shape_str(cw));
    TORCH_CHECK_VALUE(cb.dim() == 1 && cb.size(0) == cw.size(0), "fastalex.", op, ": ", bname, " must be 1-D of size ",
                      cw.size(0), " (", wname, "'s output channels), got shape ", shape_str(cb));
    for (const at::Tensor* t : {&cw, &cb}) {
      const char* name = t == &cw ? wname : bname;
      TORCH_CHECK_VALUE(t->device() == input.device(), "fastalex.", op, ": ", name, " is on ", t->device(),
                        " but input is on ", input.device(), " (expected the same device)");
      TORCH_CHECK_TYPE(t->scalar_type() == input.scalar_type(), "fastalex.", op, ": ", name, " has dtype ",
                       dtype_name(t->scalar_type()), " but input has dtype ", dtype_name(input.scalar_type()),
                       " (expected the same dtype)");
    }
    // Convolutions 2 and 4 (the k x k ones) read the reduce before them; the others the input.
    if (i != 2 && i != 4) {
      TORCH_CHECK_VALUE(cw.size(1) == C && cw.size(2) == 1 && cw.size(3) == 1, "fastalex.", op, ": ", wname,
                        " must be (out_channels, ", C, ", 1, 1) for an input of ", C, " channels, got shape ",
                        shape_str(cw));
    } else {
      TORCH_CHECK_VALUE(cw.size(1) == w[i - 1].size(0), "fastalex.", op, ": ", wname, " expects ", cw.size(1),
                        " input channels, but ", wnames[i - 1], " has ", w[i - 1].size(0), " output channels");
      TORCH_CHECK_VALUE(cw.size(2) == cw.size(3) && cw.size(2) % 2 == 1, "fastalex.", op, ": ", wname,
                        " must have a square kernel of odd size (padded to keep the map's size), got ",
                        shape_str(cw));
    }
  }
  return InceptionShape{w[0].size(0), w[1].size(0), w[2].size(0), w[3].size(0),
                        w[4].size(0), w[5].size(0), w[2].size(2), w[4].size(2)};
}

InceptionShape check_inception(const at::Tensor& input, const at::Tensor& w1, const at::Tensor& b1,
                               const at::Tensor& w3_reduce, const at::Tensor& b3_reduce, const at::Tensor& w3,
                               const at::Tensor& b3, const at::Tensor& w5_reduce, const at::Tensor& b5_reduce,
                               const at::Tensor& w5, const at::Tensor& b5, const at::Tensor& w_pool,
                               const at::Tensor& b_pool) {
  const at::Tensor w[6] = {w1, w3_reduce, w3, w5_reduce, w5, w_pool}, b[6] = {b1, b3_reduce, b3, b5_reduce, b5, b_pool};
  const char* wnames[6] = {"w1", "w3_reduce", "w3", "w5_reduce", "w5", "w_pool"};
  const char* bnames[6] = {"b1", "b3_reduce", "b3", "b5_reduce", "b5", "b_pool"};
  return check_inception_convs("inception", input, w, b, wnames, bnames);
}

// An eval-mode BatchNorm's parameters for `channels` channels: each given tensor 1-D of that
// size, on input's device, in its dtype; eps not negative, F.batch_norm's rule (which lets NaN
// through: it gives NaN factors, as in torch).
void check_batch_norm(const char* op, int64_t channels, const char* of, const at::Tensor& input,
                      std::initializer_list<std::pair<std::string, const at::Tensor*>> params, double eps) {
  for (const auto& [name, t] : params) {
    if (t == nullptr || !t->defined()) continue;
    TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == channels, "fastalex.", op, ": ", name, " must be 1-D of size ",
                      channels, " (", of, "'s output channels), got shape ", shape_str(*t));
    TORCH_CHECK_VALUE(t->device() == input.device(), "fastalex.", op, ": ", name, " is on ", t->device(),
                      " but input is on ", input.device(), " (expected the same device)");
    TORCH_CHECK_TYPE(t->scalar_type() == input.scalar_type(), "fastalex.", op, ": ", name, " has dtype ",
                     dtype_name(t->scalar_type()), " but input has dtype ", dtype_name(input.scalar_type()),
                     " (expected the same dtype)");
  }
  TORCH_CHECK_VALUE(!(eps < 0), "fastalex.", op, ": eps must be non-negative, got ", eps);
}

ConvGeometry check_conv2d_bn_relu(const at::Tensor& input, const at::Tensor& weight,
                                  const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                                  c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                                  const at::Tensor& running_mean, const at::Tensor& running_var,
                                  const c10::optional<at::Tensor>& bn_weight, const c10::optional<at::Tensor>& bn_bias,
                                  double eps) {
  const ConvGeometry g = check_conv2d_relu(input, weight, bias, stride, padding, dilation, groups, "conv2d_bn_relu");
  check_batch_norm("conv2d_bn_relu", g.out_channels, "weight", input,
                   {{"running_mean", &running_mean},
                    {"running_var", &running_var},
                    {"bn_weight", bn_weight.has_value() ? &*bn_weight : nullptr},
                    {"bn_bias", bn_bias.has_value() ? &*bn_bias : nullptr}},
                   eps);
  return g;
}

InceptionShape check_inception_bn(const at::Tensor& input, at::TensorList weights, at::TensorList running_means,
                                  at::TensorList running_vars, at::TensorList bn_weights, at::TensorList bn_biases,
                                  double eps) {
  const char* op = "inception_bn";
  const std::pair<const char*, at::TensorList> lists[] = {{"weights", weights},
                                                          {"running_means", running_means},
                                                          {"running_vars", running_vars},
                                                          {"bn_weights", bn_weights},
                                                          {"bn_biases", bn_biases}};
  for (const auto& [name, list] : lists) {
    TORCH_CHECK_VALUE(list.size() == 6, "fastalex.", op, ": ", name,
                      " must hold 6 tensors (branch1, branch2's reduce and 3x3, branch3's reduce and k x k, "
                      "branch4's projection), got ", list.size());
  }
  // The convolutions' shapes as the Inception op checks them, running_means standing for the
  // biases (one per output channel).
  const char* wnames[6] = {"weights[0]", "weights[1]", "weights[2]", "weights[3]", "weights[4]", "weights[5]"};
  const char* mnames[6] = {"running_means[0]", "running_means[1]", "running_means[2]",
                           "running_means[3]", "running_means[4]", "running_means[5]"};
  const InceptionShape s = check_inception_convs(op, input, weights.data(), running_means.data(), wnames, mnames);
  for (size_t i = 0; i < 6; ++i) {
    const std::string idx = "[" + std::to_string(i) + "]";
    check_batch_norm(op, weights[i].size(0), wnames[i], input,
                     {{"running_vars" + idx, &running_vars[i]},
                      {"bn_weights" + idx, &bn_weights[i]},
                      {"bn_biases" + idx, &bn_biases[i]}},
                     eps);
  }
  return s;
}

}  // namespace fastalex
