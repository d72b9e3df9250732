// The float32 NCHW convolution + bias + ReLU on AVX-512 CPUs (conv2d_relu_cpu.cpp chooses it):
// im2col panels built straight into the layout of the packed micro-kernel of sgemm_avx512.*,
// which adds the bias and applies the ReLU as it stores the output.
#pragma once

#include <cstdint>
#include <vector>

namespace fastalex {

struct ConvGeometry;

namespace cpu {

// Whether float32 NCHW convolutions take the packed path: an AVX-512 CPU with the fast paths on,
// unless FASTALEX_CPU_CONV=blas asks for the BLAS path (the tests run both).
bool packed_conv_enabled();

// Geometries the packed path takes: no dilation, a column stride up to 16, and at most 17
// kernel taps per column phase. Other convolutions take the BLAS path.
bool packed_conv_supports(const ConvGeometry& g);

// y (N, OC, OH, OW) = relu(conv(x, w) + b) for float32 NCHW x, w (OC, C/groups, KH, KW) and
// b (OC) or null; relu(conv(x, w) * scale + b) with a scale (OC). Needs an AVX-512 CPU and packed_conv_supports(g).
void conv_planar_packed(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g,
                        const float* scale = nullptr);

// Rows of one weight matrix (rows x K, K = C/groups * KH * KW, read in place) with their bias
// (or null), and where their outputs go: output channel r of image n is the plane at
// y + n * y_image_stride + r * OH * OW, so a segment may write a channel slice of a larger
// tensor (an Inception module's branches write their slices of its output). With a scale,
// row r's output is relu(conv * scale[r] + b[r]): an eval-mode BatchNorm applied where the
// output is stored, so its factor is never folded into a copy of the weights.
struct ConvRows {
  const float* w;
  const float* b;
  int64_t rows;
  float* y;
  int64_t y_image_stride;
  const float* scale = nullptr;
};

// Segments that read the same input channels [in_channel0, in_channel0 + C/groups): the
// im2col panel of a block is gathered once for all of them.
struct ConvJob {
  int64_t in_channel0;
  std::vector<ConvRows> segments;
};

// How many pieces each job's panels are cut into when tasks (jobs x blocks of columns) are too
// few to share evenly among the threads, or few under a job's weights too large for an L2 (its
// largest job's weights in bytes; 0 where the caller's operands are not read per block). See
// the definition.
int64_t conv_row_pieces(int64_t tasks, int max_panels, int64_t job_weight_bytes = 0);

// relu(conv + bias) for every job, g giving the input (its batch, in_channels, H, W), the
// kernel, stride, padding and groups (out_channels is not used); x's images are
// x_image_stride floats apart (a channel slice of a larger tensor may be the input).
// 3 x 3 and 5 x 5 stride-1 convolutions may take Winograd (conv2d_winograd_avx512.h). Needs an AVX-512
// CPU and packed_conv_supports(g).
void conv_planar_jobs(const float* x, int64_t x_image_stride, const std::vector<ConvJob>& jobs, const ConvGeometry& g);

}  // namespace cpu
}  // namespace fastalex
