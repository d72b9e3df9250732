// The Inception op on the CPU. float32 NCHW on AVX-512 runs the module in four passes of the
// packed convolution (conv2d_relu_packed_avx512.*) and one of the 3x3/1 pool, every branch
// writing its channel slice of the one output: the three 1x1 convolutions that read the input
// as one job (each block's input panel read once for all three, branch1 straight into the
// output, the reduces into their two intermediates), the pool into a third intermediate, then
// the k x k convolutions over the reduces and the projection over the pooled map. No cat, no
// stacked weight copy, no strided slice made contiguous. Other dtypes, channels_last inputs
// and CPUs without AVX-512 take the composite (fastalex's own ops and a cat). inception_bn
// (torchvision's block in eval mode) runs the same kernel with each BatchNorm as a per-channel
// scale and shift in its convolution's store.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <vector>

#include "common/op_checks.h"
#include "cpu/buffer_pool.h"
#include "cpu/conv2d_relu_packed_avx512.h"
#include "cpu/max_pool2d_kernels.h"
#include "batch_norm_composite.h"
#include "inception_composite.h"

namespace fastalex {
namespace cpu {
namespace {

ConvGeometry geometry(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k) {
  ConvGeometry g{};
  g.batch = n;
  g.in_channels = c;
  g.in_h = g.out_h = h;
  g.in_w = g.out_w = w;
  g.kernel_h = g.kernel_w = k;
  g.stride_h = g.stride_w = g.dilation_h = g.dilation_w = g.groups = 1;
  g.pad_h = g.pad_w = k / 2;
  return g;
}

// Float data of tensors as the micro-kernel reads them in place: contiguous() copies only strided
// ones, and the copies are kept alive for the call.
class ContiguousData {
 public:
  const float* operator()(const at::Tensor& t) {
    kept_.push_back(t.contiguous());
    return kept_.back().const_data_ptr<float>();
  }

 private:
  std::vector<at::Tensor> kept_;
};

// Whether the packed kernel below takes this call.
bool packed_inception(const at::Tensor& input, const InceptionShape& s) {
  const int64_t N = input.size(0), H = input.size(2), W = input.size(3);
  return input.scalar_type() == at::kFloat && packed_conv_enabled() &&
         kernel_memory_format(input) == at::MemoryFormat::Contiguous &&
         packed_conv_supports(geometry(N, s.c3r, H, W, s.k3)) && packed_conv_supports(geometry(N, s.c5r, H, W, s.k5)) &&
         H > 0 && W > 0;
}

// The module on float32 NCHW: six contiguous weights w[i] (read in place), their biases b[i]
// and, for a BatchNorm'd module, per-channel scales (else null), in the module's order.
at::Tensor inception_packed(const at::Tensor& input, const InceptionShape& s, const float* const* w,
                            const float* const* b, const float* const* scale) {
  const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const ConvGeometry g3 = geometry(N, s.c3r, H, W, s.k3), g5 = geometry(N, s.c5r, H, W, s.k5);
  const int64_t ctot = s.c1 + s.c3 + s.c5 + s.cp, P = H * W;
  const at::Tensor x = input.contiguous();
  at::Tensor y = pooled_empty({N, ctot, H, W}, x.options());
  if (N == 0) return y;
  const at::Tensor r3 = pooled_empty({N, s.c3r, H, W}, x.options()), r5 = pooled_empty({N, s.c5r, H, W}, x.options());
  const at::Tensor pooled = pooled_empty({N, C, H, W}, x.options());
  auto data = [](const at::Tensor& t) { return t.const_data_ptr<float>(); };
  float* out = y.mutable_data_ptr<float>();
  const int64_t out_image = ctot * P;
  auto rows = [&](int i, int64_t count, float* dst, int64_t image_stride) {
    return ConvRows{w[i], b[i], count, dst, image_stride, scale[i]};
  };
  // The three 1x1 convolutions of the input: one job.
  conv_planar_jobs(data(x), C * P,
                   {ConvJob{0,
                            {rows(0, s.c1, out, out_image), rows(1, s.c3r, r3.mutable_data_ptr<float>(), s.c3r * P),
                             rows(3, s.c5r, r5.mutable_data_ptr<float>(), s.c5r * P)}}},
                   geometry(N, C, H, W, 1));
  PoolGeometry pg{};
  pg.batch = N;
  pg.channels = C;
  pg.in_h = pg.out_h = H;
  pg.in_w = pg.out_w = W;
  pg.kernel_h = pg.kernel_w = 3;
  pg.stride_h = pg.stride_w = pg.pad_h = pg.pad_w = pg.dilation_h = pg.dilation_w = 1;
#if defined(__x86_64__)  // (packed_conv_enabled() holds only on AVX-512 CPUs)
  at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    pool_3x3s1_strips<true>(data(x), pooled.mutable_data_ptr<float>(), pg, begin, end);
  });
#endif
  conv_planar_jobs(data(r3), s.c3r * P, {ConvJob{0, {rows(2, s.c3, out + s.c1 * P, out_image)}}}, g3);
  conv_planar_jobs(data(r5), s.c5r * P, {ConvJob{0, {rows(4, s.c5, out + (s.c1 + s.c3) * P, out_image)}}}, g5);
  conv_planar_jobs(data(pooled), C * P, {ConvJob{0, {rows(5, s.cp, out + (s.c1 + s.c3 + s.c5) * P, out_image)}}},
                   geometry(N, C, H, W, 1));
  return y;
}

at::Tensor inception_cpu(const at::Tensor& input, const at::Tensor& w1, const at::Tensor& b1,
                         const at::Tensor& w3_reduce, const at::Tensor& b3_reduce, const at::Tensor& w3,
                         const at::Tensor& b3, const at::Tensor& w5_reduce, const at::Tensor& b5_reduce,
                         const at::Tensor& w5, const at::Tensor& b5, const at::Tensor& w_pool,
                         const at::Tensor& b_pool) {
  const InceptionShape s = check_inception(input, w1, b1, w3_reduce, b3_reduce, w3, b3, w5_reduce, b5_reduce, w5, b5,
                                           w_pool, b_pool);
  if (!packed_inception(input, s)) {
    return inception_composite(input, w1, b1, w3_reduce, b3_reduce, w3, b3, w5_reduce, b5_reduce, w5, b5, w_pool,
                               b_pool);
  }
  ContiguousData data;
  const float* w[6] = {data(w1), data(w3_reduce), data(w3), data(w5_reduce), data(w5), data(w_pool)};
  const float* b[6] = {data(b1), data(b3_reduce), data(b3), data(b5_reduce), data(b5), data(b_pool)};
  const float* scale[6] = {};
  return inception_packed(input, s, w, b, scale);
}

// torchvision's Inception block in eval mode: the same kernel, each convolution's BatchNorm
// applied as a per-channel scale and shift where its output is stored (no folded weights;
// both recomputed from the BatchNorm's tensors on every call).
at::Tensor inception_bn_cpu(const at::Tensor& input, at::TensorList weights, at::TensorList running_means,
                            at::TensorList running_vars, at::TensorList bn_weights, at::TensorList bn_biases,
                            double eps) {
  const InceptionShape s = check_inception_bn(input, weights, running_means, running_vars, bn_weights, bn_biases, eps);
  check_float_dtype("inception_bn", "input", input, /*half_ok=*/false);
  if (!packed_inception(input, s)) {
    return inception_bn_composite(input, weights, running_means, running_vars, bn_weights, bn_biases, eps);
  }
  ContiguousData data;
  int64_t total = 0;
  for (size_t i = 0; i < 6; ++i) total += weights[i].size(0);
  std::vector<float> affine(2 * total);
  const float *w[6], *b[6], *scale[6];
  float* next = affine.data();
  for (size_t i = 0; i < 6; ++i) {
    const int64_t oc = weights[i].size(0);
    w[i] = data(weights[i]);
    batch_norm_affine(oc, data(running_means[i]), data(running_vars[i]), data(bn_weights[i]),
                      data(bn_biases[i]), eps, next, next + oc);
    scale[i] = next;
    b[i] = next + oc;
    next += 2 * oc;
  }
  return inception_packed(input, s, w, b, scale);
}

}  // namespace
}  // namespace cpu
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CPU, m) {
  m.impl("inception", &fastalex::cpu::inception_cpu);
  m.impl("inception_bn", &fastalex::cpu::inception_bn_cpu);
}
