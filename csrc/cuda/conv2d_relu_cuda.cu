// Host side of the CUDA conv2d + bias + ReLU: checks, device guard, stream, dispatch, launch.
// (Also compiled by the host compiler for the emulator: see host_glue.h.)
//
// Which kernel runs:
//   float16, bfloat16                          -> conv2d_relu_mma_kernel (tensor cores)
//   float32 with torch.backends.cudnn.allow_tf32 (torch's default for convolutions)
//                                              -> conv2d_relu_mma_kernel, TF32 (10-bit mantissa)
//     (read per op, as torch's own convolutions read it: allowTF32CuDNN(Float32Op::CONV), which
//     is torch.backends.cudnn.conv.fp32_precision == "tf32" and follows the legacy flag; the
//     op-less allowTF32CuDNN() throws once the per-op API has set conv and RNN differently)
//   float32 without TF32, float64              -> conv2d_relu_igemm_kernel (exact FFMA)
// The tensor-core kernel's A loader is the 16-byte cp.async one when the input's channels per
// group are a multiple of 16 bytes (an NCHW input is first copied to channels_last), the
// element gather otherwise (the 3-channel stems).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/Context.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/where.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "common/op_checks.h"
#include "cuda/conv2d_relu_kernel.cuh"
#include "cuda/conv2d_relu_mma_kernel.cuh"
#include "cuda/conv2d_relu_mma_tiles.h"
#include "cuda/host_glue.h"

namespace fastalex {
namespace cuda {
namespace {

// Launches conv2d_relu_mma_kernel<T, Tile, kVec> over (pixel tiles, channel tiles, groups).
template <typename scalar_t, typename Tile, bool kVec>
void launch_mma_tile(const at::Tensor& x, const at::Tensor& wmat, const at::Tensor& bias, at::Tensor& y,
                     const MmaConvParams& p, int64_t groups, Stream stream) {
  using T = device_t<scalar_t>;
  constexpr auto kernel = conv2d_relu_mma_kernel<T, Tile, kVec>;
  const int smem = mma_conv_smem_bytes<Tile, T>();
  set_max_dynamic_shared(kernel, smem);
  // No tile is smaller than the FFMA kernel's, so conv2d_relu_cuda's grid check covers this grid.
  static_assert(Tile::BM >= kConvBN && Tile::BN >= kConvBM, "a tensor-core tile below the FFMA kernel's tile");
  const int64_t grid_x = (p.pixels + Tile::BM - 1) / Tile::BM;
  const int64_t grid_y = (p.out_channels_per_group + Tile::BN - 1) / Tile::BN;
  const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y), static_cast<unsigned>(groups));
  launch<kernel>(grid, dim3(Tile::kThreads), smem, stream, device_ptr<scalar_t>(x, "input"),
                 device_ptr<scalar_t>(wmat, "weight"), bias.defined() ? device_ptr<scalar_t>(bias, "bias") : nullptr,
                 device_mut_ptr<scalar_t>(y, "output"), p);
}

// torch's TF32 setting for convolutions, read per op as torch's own convolutions read it.
// torch 2.11 (the lent GPU machines') and 2.14 (CI's) take the op as an enum; an older torch
// gets the string form where it has one, else the op-less legacy flag.
template <typename Ctx>
auto conv_tf32_older(const Ctx& c, int) -> decltype(c.allowTF32CuDNN(std::string("conv"))) {
  return c.allowTF32CuDNN(std::string("conv"));
}
template <typename Ctx>
bool conv_tf32_older(const Ctx& c, long) {
  return c.allowTF32CuDNN();
}
bool conv_allows_tf32() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 11)
  return at::globalContext().allowTF32CuDNN(at::Float32Op::CONV);
#else
  return conv_tf32_older(at::globalContext(), 0);
#endif
}

bool aligned16(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.const_data_ptr()) % 16 == 0; }

// float32 -> TF32 as cvt.rna.tf32.f32 rounds (to nearest, ties away from zero: add half of the
// dropped 13 bits to the magnitude, then clear them); NaN and inf are kept as they are.
at::Tensor round_to_tf32(const at::Tensor& w) {
  const at::Tensor rounded = w.view(at::kInt).add(0x1000).bitwise_and(~0x1FFF).view(at::kFloat);
  return at::where(w.isfinite(), rounded, w);
}

// The geometry both kernels read, in their 32-bit fields (checked to fit).
ConvShape conv_shape(const ConvGeometry& g) {
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  TORCH_CHECK_VALUE(g.dilation_h <= kMax && g.dilation_w <= kMax && g.stride_h <= kMax && g.stride_w <= kMax &&
                        g.pad_h <= kMax && g.pad_w <= kMax,
                    "fastalex.conv2d_relu: stride, padding and dilation must each fit in 32 bits for the CUDA kernel");
  ConvShape s{};
  s.batch = g.batch;
  s.in_h = g.in_h;
  s.in_w = g.in_w;
  s.out_h = g.out_h;
  s.out_w = g.out_w;
  s.in_channels_per_group = static_cast<int>(g.in_channels / g.groups);
  s.out_channels_per_group = static_cast<int>(g.out_channels / g.groups);
  s.kernel_h = static_cast<int>(g.kernel_h);
  s.kernel_w = static_cast<int>(g.kernel_w);
  s.stride_h = static_cast<int>(g.stride_h);
  s.stride_w = static_cast<int>(g.stride_w);
  s.pad_h = static_cast<int>(g.pad_h);
  s.pad_w = static_cast<int>(g.pad_w);
  s.dilation_h = static_cast<int>(g.dilation_h);
  s.dilation_w = static_cast<int>(g.dilation_w);
  s.K = static_cast<int>(g.in_channels / g.groups * g.kernel_h * g.kernel_w);  // checked by the caller
  s.pixels = g.batch * g.out_h * g.out_w;
  return s;
}

// The tensor-core path (see the top of this file). `y` is allocated; `bias` may be undefined.
// Returns false, having done nothing, for samples too large for its 32-bit in-sample offsets
// (2^31 elements and more, or padded maps of 2^30 rows or columns): the FFMA kernel, with 64-bit
// offsets throughout, takes those.
bool conv2d_relu_mma(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& y,
                     const ConvGeometry& g, const ConvShape& shape, Stream stream) {
  constexpr int64_t kMax32 = std::numeric_limits<int>::max();
  if (std::max(strided_extent(input.select(0, 0)), g.in_channels * g.in_h * g.in_w) > kMax32) return false;
  // Window origins and tap offsets in int: the padded image must stay well inside its range.
  if (g.in_h + 2 * g.pad_h >= (int64_t(1) << 30) || g.in_w + 2 * g.pad_w >= (int64_t(1) << 30)) return false;
  const int64_t groups = g.groups, ocg = g.out_channels / groups, cg = g.in_channels / groups;
  const int64_t vec = 16 / input.element_size();  // elements per 16-byte chunk
  // The 16-byte loader needs K-contiguous, aligned channel runs; a channels_last copy gives
  // them whenever the channel count allows.
  const bool vec_channels = cg % vec == 0;
  at::Tensor x = input;
  if (vec_channels && !(x.stride(1) == 1 && x.stride(0) % vec == 0 && x.stride(2) % vec == 0 &&
                        x.stride(3) % vec == 0 && aligned16(x)))
    x = input.contiguous(at::MemoryFormat::ChannelsLast);
  // Weights as the GEMM's B: [out_channels][K_padded], (kh, kw, c) order, zero-padded to 16 bytes.
  const int64_t K = cg * g.kernel_h * g.kernel_w, K_padded = (K + vec - 1) / vec * vec;
  at::Tensor wmat = weight.permute({0, 2, 3, 1}).reshape({g.out_channels, K});
  wmat = K_padded == K ? wmat.contiguous() : at::constant_pad_nd(wmat, {0, K_padded - K}, 0);
  if (input.scalar_type() == at::kFloat) wmat = round_to_tf32(wmat);

  MmaConvParams p{};
  static_cast<ConvShape&>(p) = shape;
  p.K_padded = static_cast<int>(K_padded);
  p.in_sn = x.stride(0);
  p.in_sc = static_cast<int>(x.stride(1));  // within one sample: checked above to fit
  p.in_sh = static_cast<int>(x.stride(2));
  p.in_sw = static_cast<int>(x.stride(3));
  strides4(y, p.out_sn, p.out_sc, p.out_sh, p.out_sw);
  p.vector_store = y.stride(1) == 1 && ocg % vec == 0 && y.stride(0) % vec == 0 && y.stride(2) % vec == 0 &&
                   y.stride(3) % vec == 0 && aligned16(y);

  const MmaTileChoice tile = vec_channels ? choose_mma_tile(p.pixels, ocg, groups, sm_count()) : MmaTileChoice::k64x64;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastalex_conv2d_relu_mma", [&] {
    if constexpr (std::is_same_v<scalar_t, double>) {
      TORCH_CHECK(false, "fastalex.conv2d_relu: no tensor-core kernel for float64");
    } else if (!vec_channels) {
      launch_mma_tile<scalar_t, MmaTile64x64, false>(x, wmat, bias, y, p, groups, stream);
    } else if (tile == MmaTileChoice::k128x128) {
      launch_mma_tile<scalar_t, MmaTile128x128, true>(x, wmat, bias, y, p, groups, stream);
    } else if (tile == MmaTileChoice::k128x64) {
      launch_mma_tile<scalar_t, MmaTile128x64, true>(x, wmat, bias, y, p, groups, stream);
    } else {
      launch_mma_tile<scalar_t, MmaTile64x64, true>(x, wmat, bias, y, p, groups, stream);
    }
  });
  return true;
}

at::Tensor conv2d_relu_cuda(const at::Tensor& input, const at::Tensor& weight,
                            const c10::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                            c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups) {
  const ConvGeometry g = check_conv2d_relu(input, weight, bias, stride, padding, dilation, groups);
  check_float_dtype("conv2d_relu", "input", input, /*half_ok=*/true);
  const DeviceScope scope(input);
  const auto fmt = kernel_memory_format(input);
  at::Tensor y = at::empty({g.batch, g.out_channels, g.out_h, g.out_w}, input.options().memory_format(fmt));
  if (y.numel() == 0) return y;

  const int64_t ocg = g.out_channels / groups, cg = g.in_channels / groups;
  const int64_t K = cg * g.kernel_h * g.kernel_w;
  const int64_t pixels = g.batch * g.out_h * g.out_w;
  const int64_t grid_x = (pixels + kConvBN - 1) / kConvBN, grid_y = (ocg + kConvBM - 1) / kConvBM;
  TORCH_CHECK_VALUE(K <= std::numeric_limits<int>::max() && ocg <= std::numeric_limits<int>::max(),
                    "fastalex.conv2d_relu: weight of shape ", weight.sizes(),
                    " is too large for the CUDA kernel (reduction length ", K, ")");
  TORCH_CHECK_VALUE(grid_x <= std::numeric_limits<int>::max() && grid_y <= 65535 && groups <= 65535,
                    "fastalex.conv2d_relu: problem too large for one launch (", pixels,
                    " output pixels, ", ocg, " channels per group, ", groups, " groups)");
  const bool has_bias = bias.has_value() && bias->defined();
  const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
  const ConvShape shape = conv_shape(g);

  const bool tensor_cores = input.scalar_type() == at::kHalf || input.scalar_type() == at::kBFloat16 ||
                            (input.scalar_type() == at::kFloat && conv_allows_tf32());
  if (tensor_cores && conv2d_relu_mma(input, weight, b, y, g, shape, scope.stream())) return y;

  // The FFMA kernel reads the input through its strides (any layout); weight and bias are small.
  const at::Tensor w = weight.contiguous();
  ConvParams p{};
  static_cast<ConvShape&>(p) = shape;
  strides4(input, p.in_sn, p.in_sc, p.in_sh, p.in_sw);
  strides4(y, p.out_sn, p.out_sc, p.out_sh, p.out_sw);

  const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y), static_cast<unsigned>(groups));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastalex_conv2d_relu_cuda", [&] {
    launch<conv2d_relu_igemm_kernel<device_t<scalar_t>>>(
        grid, dim3(kConvThreads), 0, scope.stream(), device_ptr<scalar_t>(input, "input"),
        device_ptr<scalar_t>(w, "weight"), has_bias ? device_ptr<scalar_t>(b, "bias") : nullptr,
        device_mut_ptr<scalar_t>(y, "output"), p);
  });
  return y;
}

}  // namespace
}  // namespace cuda
}  // namespace fastalex

FASTALEX_CUDA_IMPL(m) {
  m.impl("conv2d_relu", &fastalex::cuda::conv2d_relu_cuda);
}
