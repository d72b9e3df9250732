// The Inception op on the CPU. float32 NCHW on AVX-512 runs the module in four passes of the
// packed convolution (conv2d_relu_packed_avx512.*) and one of the 3x3/1 pool, every branch
// writing its channel slice of the one output: the three 1x1 convolutions that read the input
// as one job (each block's input panel read once for all three, branch1 straight into the
// output, the reduces into their two intermediates), the pool into a third intermediate, then
// the k x k convolutions over the reduces and the projection over the pooled map. No cat, no
// stacked weight copy, no strided slice made contiguous. Other dtypes, channels_last inputs
// and CPUs without AVX-512 take the composite (fastalex's own ops and a cat).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <vector>

#include "common/op_checks.h"
#include "cpu/buffer_pool.h"
#include "cpu/conv2d_relu_packed_avx512.h"
#include "cpu/max_pool2d_kernels.h"
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

at::Tensor inception_cpu(const at::Tensor& input, const at::Tensor& w1, const at::Tensor& b1,
                         const at::Tensor& w3_reduce, const at::Tensor& b3_reduce, const at::Tensor& w3,
                         const at::Tensor& b3, const at::Tensor& w5_reduce, const at::Tensor& b5_reduce,
                         const at::Tensor& w5, const at::Tensor& b5, const at::Tensor& w_pool,
                         const at::Tensor& b_pool) {
  const InceptionShape s = check_inception(input, w1, b1, w3_reduce, b3_reduce, w3, b3, w5_reduce, b5_reduce, w5, b5,
                                           w_pool, b_pool);
  const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const ConvGeometry g3 = geometry(N, s.c3r, H, W, s.k3), g5 = geometry(N, s.c5r, H, W, s.k5);
  const bool fast = input.scalar_type() == at::kFloat && packed_conv_enabled() &&
                    kernel_memory_format(input) == at::MemoryFormat::Contiguous && packed_conv_supports(g3) &&
                    packed_conv_supports(g5) && H > 0 && W > 0;
  if (!fast) {
    return inception_composite(input, w1, b1, w3_reduce, b3_reduce, w3, b3, w5_reduce, b5_reduce, w5, b5, w_pool,
                               b_pool);
  }
  const int64_t ctot = s.c1 + s.c3 + s.c5 + s.cp, P = H * W;
  const at::Tensor x = input.contiguous();
  at::Tensor y = pooled_empty({N, ctot, H, W}, x.options());
  if (N == 0) return y;
  const at::Tensor r3 = pooled_empty({N, s.c3r, H, W}, x.options()), r5 = pooled_empty({N, s.c5r, H, W}, x.options());
  const at::Tensor pooled = pooled_empty({N, C, H, W}, x.options());
  // Weights are read in place by the micro-kernel: contiguous() copies only strided ones.
  auto data = [](const at::Tensor& t) { return t.const_data_ptr<float>(); };
  const at::Tensor cw1 = w1.contiguous(), cb1 = b1.contiguous(), cwr3 = w3_reduce.contiguous(),
                   cbr3 = b3_reduce.contiguous(), cw3 = w3.contiguous(), cb3 = b3.contiguous(),
                   cwr5 = w5_reduce.contiguous(), cbr5 = b5_reduce.contiguous(), cw5 = w5.contiguous(),
                   cb5 = b5.contiguous(), cwp = w_pool.contiguous(), cbp = b_pool.contiguous();
  float* out = y.mutable_data_ptr<float>();
  const int64_t out_image = ctot * P;
  // The three 1x1 convolutions of the input: one job.
  conv_planar_jobs(data(x), C * P,
                   {ConvJob{0,
                            {ConvRows{data(cw1), data(cb1), s.c1, out, out_image},
                             ConvRows{data(cwr3), data(cbr3), s.c3r, r3.mutable_data_ptr<float>(), s.c3r * P},
                             ConvRows{data(cwr5), data(cbr5), s.c5r, r5.mutable_data_ptr<float>(), s.c5r * P}}}},
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
  conv_planar_jobs(data(r3), s.c3r * P, {ConvJob{0, {ConvRows{data(cw3), data(cb3), s.c3, out + s.c1 * P, out_image}}}},
                   g3);
  conv_planar_jobs(data(r5), s.c5r * P,
                   {ConvJob{0, {ConvRows{data(cw5), data(cb5), s.c5, out + (s.c1 + s.c3) * P, out_image}}}}, g5);
  conv_planar_jobs(data(pooled), C * P,
                   {ConvJob{0, {ConvRows{data(cwp), data(cbp), s.cp, out + (s.c1 + s.c3 + s.c5) * P, out_image}}}},
                   geometry(N, C, H, W, 1));
  return y;
}

}  // namespace
}  // namespace cpu
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CPU, m) {
  m.impl("inception", &fastalex::cpu::inception_cpu);
}
