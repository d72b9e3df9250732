// conv2d + bias + ReLU on the CPU as a tiled GEMM: for each (sample, tile of output pixels),
// gather the tile's im2col columns into a buffer that stays in cache, multiply by the
// group's weights with the BLAS torch links (at::mm_out writing straight into the output),
// then add the bias and clamp while the tile is still hot. Both layouts run natively:
// planar (NCHW) computes W[oc, k] x cols[k, p]; channels-last computes cols[p, k] x W'[k, oc]
// with the weight reordered to (oc, kh, kw, c) so that k walks contiguous channels.
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
#include <vector>

#include "common/op_checks.h"
#include "cpu/sgemm_avx512.h"

namespace fastalex {
namespace cpu {
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
        // cols[k][j] = padded input at (c, oh*sh - ph + kh, ow*sw - pw + kw) for pixel p0 + j.
        for (int64_t c = 0; c < Cg; ++c) {
          const scalar_t* xc = x + ((n * g.in_channels) + grp * Cg + c) * H * W;
          for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
            for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
              scalar_t* dst = cols.data() + ((c * g.kernel_h + kh) * g.kernel_w + kw) * tp;
              int64_t oh = p0 / OW, ow = p0 % OW;
              for (int64_t j = 0; j < tp;) {
                const int64_t ih = oh * g.stride_h - g.pad_h + kh;
                const int64_t run = std::min(tp - j, OW - ow);  // pixels left on this output row
                if (ih < 0 || ih >= H) {
                  std::fill(dst + j, dst + j + run, scalar_t(0));
                } else {
                  const scalar_t* row = xc + ih * W;
                  for (int64_t r = 0; r < run; ++r) {
                    const int64_t iw = (ow + r) * g.stride_w - g.pad_w + kw;
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

// Pixels j .. j+len-1 of a 32-pixel block lie on output row oh, from column ow on.
struct PixelRun {
  int64_t oh, ow, j, len;
};

// The im2col panel of one 32-pixel block, in the micro-kernel's layout: panel[k][j] = padded
// input at channel c, (oh*sh - ph + kh, ow*sw - pw + kw), k = (c, kh, kw), built a row segment
// at a time; columns past np are zero. Compiled for AVX-512 like its only caller's kernel.
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#endif
void im2col_panel(const float* xg, int64_t Cg, const ConvGeometry& g, const PixelRun* runs, int nruns, int64_t np,
                  float* panel) {
  const int64_t KH = g.kernel_h, KW = g.kernel_w, H = g.in_h, W = g.in_w, sw = g.stride_w;
  for (int64_t c = 0; c < Cg; ++c) {
    const float* xc = xg + c * H * W;
    for (int64_t kh = 0; kh < KH; ++kh) {
      for (int64_t kw = 0; kw < KW; ++kw) {
        float* dst = panel + ((c * KH + kh) * KW + kw) * sgemm::kNR;
        for (int r = 0; r < nruns; ++r) {
          const PixelRun& run = runs[r];
          float* d = dst + run.j;
          const int64_t ih = run.oh * g.stride_h - g.pad_h + kh;
          if (ih < 0 || ih >= H) {
            std::fill(d, d + run.len, 0.f);
            continue;
          }
          const float* row = xc + ih * W;
          const int64_t iw0 = run.ow * sw - g.pad_w + kw;
          // Columns lo .. hi-1 of the run read inside the row; the others are padding.
          const int64_t lo = iw0 >= 0 ? 0 : std::min<int64_t>(run.len, (-iw0 + sw - 1) / sw);
          const int64_t hi = std::max<int64_t>(lo, std::min<int64_t>(run.len, W - iw0 > 0 ? (W - iw0 + sw - 1) / sw : 0));
          std::fill(d, d + lo, 0.f);
          if (sw == 1) {
            std::copy(row + iw0 + lo, row + iw0 + hi, d + lo);
          } else {
            for (int64_t q = lo; q < hi; ++q) d[q] = row[iw0 + q * sw];
          }
          std::fill(d + hi, d + run.len, 0.f);
        }
        for (int64_t j = np; j < sgemm::kNR; ++j) dst[j] = 0.f;
      }
    }
  }
}

// float32 NCHW on AVX-512 CPUs: the packed micro-kernel instead of BLAS. Weights are packed
// once per call into 14-row panels; each task gathers the im2col panel of 32 output pixels
// straight into the micro-kernel's layout (K x 32, in L2; a 256-deep slice of it in L1) and
// runs every 14 x 32 output tile over it, the last reduction block adding the bias and
// applying the ReLU on the way to memory -- the output is written once.
void conv_planar_packed(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g) {
  using namespace sgemm;
  const int64_t Cg = g.in_channels / g.groups, OCg = g.out_channels / g.groups;
  const int64_t KH = g.kernel_h, KW = g.kernel_w, K = Cg * KH * KW;
  const int64_t H = g.in_h, W = g.in_w, OW = g.out_w, P = g.out_h * g.out_w;
  const int64_t mpanels = (OCg + kMR - 1) / kMR, pblocks = (P + kNR - 1) / kNR;
  std::vector<float> apack(static_cast<size_t>(g.groups * mpanels * K * kMR));
  at::parallel_for(0, g.groups * mpanels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t grp = t / mpanels, mb = t % mpanels;
      pack_a_panel(w + (grp * OCg + mb * kMR) * K, K, static_cast<int>(std::min<int64_t>(kMR, OCg - mb * kMR)), K,
                   apack.data() + t * K * kMR);
    }
  });
  at::parallel_for(0, g.batch * g.groups * pblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> bpack(static_cast<size_t>(K * kNR));
    PixelRun runs[sgemm::kNR];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / (g.groups * pblocks), grp = (t / pblocks) % g.groups, pb = t % pblocks;
      const int64_t p0 = pb * kNR, np = std::min<int64_t>(kNR, P - p0);
      int nruns = 0;
      for (int64_t j = 0; j < np;) {
        const int64_t p = p0 + j, ow = p % OW, len = std::min(np - j, OW - ow);
        runs[nruns++] = PixelRun{p / OW, ow, j, len};
        j += len;
      }
      im2col_panel(x + (n * g.in_channels + grp * Cg) * H * W, Cg, g, runs, nruns, np, bpack.data());
      float* yt = y + (n * g.out_channels + grp * OCg) * P + p0;
      for (int64_t kb = 0; kb < K; kb += kKC) {
        const int64_t kc = std::min<int64_t>(kKC, K - kb);
        for (int64_t mb = 0; mb < mpanels; ++mb) {
          const int mr = static_cast<int>(std::min<int64_t>(kMR, OCg - mb * kMR));
          micro_kernel(kc, apack.data() + ((grp * mpanels + mb) * K + kb) * kMR, bpack.data() + kb * kNR,
                       yt + mb * kMR * P, P, mr, static_cast<int>(np), kb > 0, kb + kc >= K,
                       b ? b + grp * OCg + mb * kMR : nullptr);
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
        // cols[j][(kh, kw, c)] = padded input at (oh*sh - ph + kh, ow*sw - pw + kw, c).
        for (int64_t j = 0; j < tp; ++j) {
          const int64_t oh = (p0 + j) / OW, ow = (p0 + j) % OW;
          scalar_t* dst = cols.data() + j * K;
          for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
            const int64_t ih = oh * g.stride_h - g.pad_h + kh;
            for (int64_t kw = 0; kw < g.kernel_w; ++kw, dst += Cg) {
              const int64_t iw = ow * g.stride_w - g.pad_w + kw;
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

// The packed AVX-512 path for float32 NCHW, unless the CPU lacks AVX-512 or
// FASTALEX_CPU_CONV=blas asks for the BLAS path (the tests run both).
bool packed_conv_enabled() {
  const char* mode = std::getenv("FASTALEX_CPU_CONV");
  if (mode != nullptr && std::string(mode) == "blas") return false;
  return sgemm::has_avx512();
}

at::Tensor conv2d_relu_cpu(const at::Tensor& input, const at::Tensor& weight,
                           const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                           c10::IntArrayRef padding, int64_t groups) {
  const ConvGeometry g = check_conv2d_relu(input, weight, bias, stride, padding, groups);
  check_float_dtype("conv2d_relu", "input", input, /*half_ok=*/false);
  const auto fmt = kernel_memory_format(input);
  const at::Tensor x = input.contiguous(fmt);
  at::Tensor y = at::empty({g.batch, g.out_channels, g.out_h, g.out_w}, x.options().memory_format(fmt));
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
    } else if (std::is_same<scalar_t, float>::value && packed_conv_enabled()) {
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
