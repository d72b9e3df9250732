// conv2d + bias + ReLU on the CPU as a tiled GEMM: for each (sample, tile of output pixels),
// gather the tile's im2col columns into a buffer that stays in cache, multiply by the
// group's weights with the BLAS torch links (at::mm_out writing straight into the output),
// then add the bias and clamp while the tile is still hot. Both layouts run natively:
// planar (NCHW) computes W[oc, k] x cols[k, p]; channels-last computes cols[p, k] x W'[k, oc]
// with the weight reordered to (oc, kh, kw, c) so that k walks contiguous channels.
// float32 NCHW on AVX-512 CPUs takes conv_planar_packed (conv2d_relu_packed_avx512.*) instead:
// im2col panels built straight into the layout of a packed micro-kernel (sgemm_avx512.*) that
// applies bias and ReLU.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/op_checks.h"
#include "cpu/buffer_pool.h"
#include "cpu/conv2d_relu_packed_avx512.h"
#include "cpu/multiversion.h"

namespace fastalex {
namespace cpu {

bool packed_conv_enabled() {
  const char* mode = std::getenv("FASTALEX_CPU_CONV");
  if (mode != nullptr && std::string(mode) == "blas") return false;
  return use_avx512_path();
}

namespace {

// Output pixels per tile: the im2col tile (K x tile) is kept near 1 MiB so it stays in L2.
int64_t pixel_tile(int64_t K, int64_t P, int64_t elem_size) {
  int64_t t = (int64_t{1} << 20) / (elem_size * std::max<int64_t>(K, 1));
  t = std::max<int64_t>(16, t / 16 * 16);
  return std::min(t, P);
}

template <typename scalar_t>
void conv_planar(const scalar_t* x, const scalar_t* w, const scalar_t* b, scalar_t* y,
                 const ConvGeometry& g, const at::TensorOptions& opts) {
  const int64_t Cg = g.in_channels / g.groups, OCg = g.out_channels / g.groups;
  const int64_t KHW = g.kernel_h * g.kernel_w, K = Cg * KHW;
  const int64_t H = g.in_h, W = g.in_w, OW = g.out_w, P = g.out_h * g.out_w;
  const int64_t TP = pixel_tile(K, P, sizeof(scalar_t));
  const int64_t tiles = (P + TP - 1) / TP;
  at::parallel_for(0, g.batch * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> cols(K * TP);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / tiles, p0 = (t % tiles) * TP, tp = std::min(TP, P - p0);
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        // cols[k][j] = padded input at (c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw) for pixel p0 + j.
        for (int64_t c = 0; c < Cg; ++c) {
          const scalar_t* xc = x + ((n * g.in_channels) + grp * Cg + c) * H * W;
          for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
            for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
              scalar_t* dst = cols.data() + ((c * g.kernel_h + kh) * g.kernel_w + kw) * tp;
              int64_t oh = p0 / OW, ow = p0 % OW;
              for (int64_t j = 0; j < tp;) {
                const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
                const int64_t run = std::min(tp - j, OW - ow);  // pixels left on this output row
                if (ih < 0 || ih >= H) {
                  std::fill(dst + j, dst + j + run, scalar_t(0));
                } else {
                  const scalar_t* row = xc + ih * W;
                  for (int64_t r = 0; r < run; ++r) {
                    const int64_t iw = (ow + r) * g.stride_w - g.pad_w + kw * g.dilation_w;
                    dst[j + r] = (iw >= 0 && iw < W) ? row[iw] : scalar_t(0);
                  }
                }
                j += run;
                ow = 0;
                ++oh;
              }
            }
          }
        }
        auto colt = at::from_blob(cols.data(), {K, tp}, opts);
        auto wt = at::from_blob(const_cast<scalar_t*>(w) + grp * OCg * K, {OCg, K}, opts);
        scalar_t* yt = y + (n * g.out_channels + grp * OCg) * P + p0;
        auto out = at::from_blob(yt, {OCg, tp}, {P, 1}, opts);
        at::mm_out(out, wt, colt);
        for (int64_t oc = 0; oc < OCg; ++oc) {
          const scalar_t bias = b ? b[grp * OCg + oc] : scalar_t(0);
          scalar_t* row = yt + oc * P;
          for (int64_t j = 0; j < tp; ++j) row[j] = std::max(row[j] + bias, scalar_t(0));
        }
      }
    }
  });
}

template <typename scalar_t>
void conv_channels_last(const scalar_t* x, const scalar_t* w_ohwc, const scalar_t* b, scalar_t* y,
                        const ConvGeometry& g, const at::TensorOptions& opts) {
  const int64_t C = g.in_channels, Cg = C / g.groups, OC = g.out_channels, OCg = OC / g.groups;
  const int64_t K = g.kernel_h * g.kernel_w * Cg;
  const int64_t H = g.in_h, W = g.in_w, OW = g.out_w, P = g.out_h * g.out_w;
  const int64_t TP = pixel_tile(K, P, sizeof(scalar_t));
  const int64_t tiles = (P + TP - 1) / TP;
  at::parallel_for(0, g.batch * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> cols(TP * K);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / tiles, p0 = (t % tiles) * TP, tp = std::min(TP, P - p0);
      const scalar_t* xn = x + n * H * W * C;
      scalar_t* yt = y + (n * P + p0) * OC;
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        // cols[j][(kh, kw, c)] = padded input at (oh*sh - ph + kh*dh, ow*sw - pw + kw*dw, c).
        for (int64_t j = 0; j < tp; ++j) {
          const int64_t oh = (p0 + j) / OW, ow = (p0 + j) % OW;
          scalar_t* dst = cols.data() + j * K;
          for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
            const int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
            for (int64_t kw = 0; kw < g.kernel_w; ++kw, dst += Cg) {
              const int64_t iw = ow * g.stride_w - g.pad_w + kw * g.dilation_w;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
                std::fill(dst, dst + Cg, scalar_t(0));
              } else {
                const scalar_t* src = xn + (ih * W + iw) * C + grp * Cg;
                std::copy(src, src + Cg, dst);
              }
            }
          }
        }
        auto colt = at::from_blob(cols.data(), {tp, K}, opts);
        auto wt = at::from_blob(const_cast<scalar_t*>(w_ohwc) + grp * OCg * K, {OCg, K}, opts);
        auto out = at::from_blob(yt + grp * OCg, {tp, OCg}, {OC, 1}, opts);
        at::mm_out(out, colt, wt.t());
      }
      for (int64_t j = 0; j < tp; ++j) {
        scalar_t* row = yt + j * OC;
        if (b) {
          for (int64_t oc = 0; oc < OC; ++oc) row[oc] = std::max(row[oc] + b[oc], scalar_t(0));
        } else {
          for (int64_t oc = 0; oc < OC; ++oc) row[oc] = std::max(row[oc], scalar_t(0));
        }
      }
    }
  });
}

at::Tensor conv2d_relu_cpu(const at::Tensor& input, const at::Tensor& weight,
                           const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                           c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups) {
  const ConvGeometry g = check_conv2d_relu(input, weight, bias, stride, padding, dilation, groups);
  check_float_dtype("conv2d_relu", "input", input, /*half_ok=*/false);
  const auto fmt = kernel_memory_format(input);
  const at::Tensor x = input.contiguous(fmt);
  at::Tensor y = pooled_empty({g.batch, g.out_channels, g.out_h, g.out_w}, x.options(), fmt);
  if (y.numel() == 0) return y;
  const bool has_bias = bias.has_value() && bias->defined();
  const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
  // Weights are small next to activations: reorder them once per call.
  const at::Tensor w = fmt == at::MemoryFormat::ChannelsLast ? weight.permute({0, 2, 3, 1}).contiguous()
                                                             : weight.contiguous();
  const auto opts = x.options().memory_format(c10::nullopt);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fastalex_conv2d_relu_cpu", [&] {
    const scalar_t* bp = has_bias ? b.const_data_ptr<scalar_t>() : nullptr;
    if (fmt == at::MemoryFormat::ChannelsLast) {
      conv_channels_last<scalar_t>(x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), bp,
                                   y.mutable_data_ptr<scalar_t>(), g, opts);
    } else if (std::is_same<scalar_t, float>::value && packed_conv_enabled() && packed_conv_supports(g)) {
      conv_planar_packed(reinterpret_cast<const float*>(x.const_data_ptr<scalar_t>()),
                         reinterpret_cast<const float*>(w.const_data_ptr<scalar_t>()),
                         reinterpret_cast<const float*>(bp), reinterpret_cast<float*>(y.mutable_data_ptr<scalar_t>()), g);
    } else {
      conv_planar<scalar_t>(x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), bp,
                            y.mutable_data_ptr<scalar_t>(), g, opts);
    }
  });
  return y;
}

}  // namespace
}  // namespace cpu
}  // namespace fastalex

TORCH_LIBRARY_IMPL(fastalex, CPU, m) {
  m.impl("conv2d_relu", &fastalex::cpu::conv2d_relu_cpu);
}
