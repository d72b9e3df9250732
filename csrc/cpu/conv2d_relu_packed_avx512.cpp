// The packed AVX-512 path of the float32 NCHW convolution (see conv2d_relu_packed_avx512.h):
// the input's columns split into phases for strided convolutions, im2col panels of 32-pixel
// blocks gathered with vector loads, lane shifts and masked stores straight into the
// micro-kernel's layout, and the blocks run through the micro-kernel of sgemm_avx512.*.
#include "cpu/conv2d_relu_packed_avx512.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/op_checks.h"
#include "cpu/buffer_pool.h"
#include "cpu/conv2d_winograd_avx512.h"
#include "cpu/multiversion.h"
#include "cpu/sgemm_avx512.h"

namespace fastalex {
namespace cpu {
namespace {

// Pixels j .. j+len-1 of a 32-pixel block: image n, output row oh, columns ow .. ow+len-1.
struct PixelRun {
  int64_t n, oh, ow, j, len;
};

// Where im2col reads the input. With a column stride s > 1 the input is first split into s
// column phases per row (phase ph holds columns ph, ph + s, ph + 2s, ...), so that the
// strided columns a kernel tap reads for consecutive output pixels are contiguous: column
// iw0 + q*s lives at phase (iw0 mod s), index (iw0 div s) + q. For s = 1 this is the input.
struct Im2colSource {
  const float* data;
  int64_t image_stride, channel_stride, row_stride, phase_stride;
};

// The kernel's columns as the phase rows see them: tap kw reads column s*(ow + q) + kw - pw
// for output column ow + q, which is element ow + q + shift[kw] of phase row phase[kw].
// Taps of one phase have consecutive shifts, so one window of a phase row holds what all of
// them read for a run of pixels.
struct Taps {
  int64_t phases = 1;
  std::vector<int> shift;                // per kw
  std::vector<std::vector<int>> of;      // per phase: its taps (kw), by increasing shift
  std::vector<int> first_shift, spread;  // per phase: smallest shift, largest minus smallest
  std::vector<int64_t> valid_len;        // per phase: how many of its elements are input columns

  explicit Taps(const ConvGeometry& g) : phases(g.stride_w) {
    const int64_t s = g.stride_w;
    of.resize(s);
    first_shift.assign(s, 0);
    spread.assign(s, 0);
    valid_len.resize(s);
    for (int64_t ph = 0; ph < s; ++ph) valid_len[ph] = g.in_w > ph ? (g.in_w - ph + s - 1) / s : 0;
    for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const int64_t d = kw - g.pad_w, ph = ((d % s) + s) % s;
      shift.push_back(static_cast<int>((d - ph) / s));
      if (of[ph].empty()) first_shift[ph] = shift.back();
      of[ph].push_back(static_cast<int>(kw));
      spread[ph] = shift.back() - first_shift[ph];
    }
  }
  // Geometries the packed path takes: a 16-pixel piece and its taps' window must fit in two
  // vectors (at most 17 taps per phase), and the column phases (one row of scratch per
  // phase) are for strides up to 16; taps are adjacent (no dilation). Other convolutions take
  // the BLAS path.
  static bool supports(const ConvGeometry& g) {
    return g.dilation_h == 1 && g.dilation_w == 1 && g.stride_w <= 16 && (g.kernel_w + g.stride_w - 1) / g.stride_w <= 17;
  }
};

// Up to 16 pixels of one output row, and per phase where its window starts in a phase row
// (offset from the row's start) and which of its 32 lanes lie inside the row.
struct Piece {
  int64_t n, oh, j;
  __mmask16 store;
};
struct Window {
  int64_t offset;
  __mmask16 lo, hi;
};

// The im2col panel of one 32-pixel block, in the micro-kernel's layout: panel[k][j] = padded
// input of pixel j at channel c0 + c, (oh*sh - ph + kh, ow*sw - pw + kw), k = (c, kh, kw).
// Per (channel, kernel row, piece of <= 16 pixels, phase) one window of the source row is
// loaded into two vectors (masked: lanes in the padding read nothing and hold zero); each tap
// of that phase is a lane shift of the window (one permute) stored with a masked store.
// Columns past np are zeroed. `pieces` and `windows` are scratch.
#if defined(__x86_64__)
// Stride 1, KW taps: panel row kw of the piece = window lanes kw .. kw+15.
template <int KW>
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))) inline void store_shifted(
    __m512 v0, __m512 v1, float* d, __mmask16 store) {
  const __m512i lo = _mm512_castps_si512(v0), hi = _mm512_castps_si512(v1);
  _mm512_mask_storeu_ps(d, store, v0);
  if constexpr (KW > 1) _mm512_mask_storeu_ps(d + 1 * sgemm::kNR, store, _mm512_castsi512_ps(_mm512_alignr_epi32(hi, lo, 1)));
  if constexpr (KW > 2) _mm512_mask_storeu_ps(d + 2 * sgemm::kNR, store, _mm512_castsi512_ps(_mm512_alignr_epi32(hi, lo, 2)));
  if constexpr (KW > 3) _mm512_mask_storeu_ps(d + 3 * sgemm::kNR, store, _mm512_castsi512_ps(_mm512_alignr_epi32(hi, lo, 3)));
  if constexpr (KW > 4) _mm512_mask_storeu_ps(d + 4 * sgemm::kNR, store, _mm512_castsi512_ps(_mm512_alignr_epi32(hi, lo, 4)));
}

__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))) void im2col_panel(
    const Im2colSource& src, const Taps& taps, int64_t c0, const ConvGeometry& g, const PixelRun* runs, int nruns,
    int64_t np, float* panel, std::vector<Piece>& pieces, std::vector<Window>& windows) {
  const int64_t Cg = g.in_channels / g.groups, KH = g.kernel_h, KW = g.kernel_w, H = g.in_h, S = taps.phases;
  const __m512 zero = _mm512_setzero_ps();
  if (np < sgemm::kNR) {
    for (int64_t k = 0; k < Cg * KH * KW; ++k) {
      _mm512_storeu_ps(panel + k * sgemm::kNR, zero);
      _mm512_storeu_ps(panel + k * sgemm::kNR + 16, zero);
    }
  }
  pieces.clear();
  windows.clear();
  for (int r = 0; r < nruns; ++r) {
    for (int64_t j0 = 0; j0 < runs[r].len; j0 += 16) {
      const int64_t len = std::min<int64_t>(16, runs[r].len - j0), ow = runs[r].ow + j0;
      pieces.push_back(Piece{runs[r].n, runs[r].oh, runs[r].j + j0, static_cast<__mmask16>(first_lanes(len))});
      for (int64_t ph = 0; ph < S; ++ph) {
        const int64_t start = ow + taps.first_shift[ph];
        const int64_t lo = std::max<int64_t>(0, -start);
        const int64_t hi = std::min<int64_t>({32, len + taps.spread[ph], taps.valid_len[ph] - start});
        const uint64_t m = hi > lo ? ((uint64_t{1} << hi) - 1) & ~((uint64_t{1} << lo) - 1) : 0;
        windows.push_back(Window{ph * src.phase_stride + start, static_cast<__mmask16>(m),
                                 static_cast<__mmask16>(m >> 16)});
      }
    }
  }
  __m512i shifts[17];
  for (int d = 0; d <= 16; ++d) {
    shifts[d] = _mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                 _mm512_set1_epi32(d));
  }
  for (int64_t c = 0; c < Cg; ++c) {
    const float* chan = src.data + (c0 + c) * src.channel_stride;
    for (int64_t kh = 0; kh < KH; ++kh) {
      float* rows = panel + (c * KH + kh) * KW * sgemm::kNR;
      for (size_t p = 0; p < pieces.size(); ++p) {
        const Piece& pc = pieces[p];
        float* d = rows + pc.j;
        const int64_t ih = pc.oh * g.stride_h - g.pad_h + kh;
        if (ih < 0 || ih >= H) {
          for (int64_t kw = 0; kw < KW; ++kw) _mm512_mask_storeu_ps(d + kw * sgemm::kNR, pc.store, zero);
          continue;
        }
        const float* row = chan + pc.n * src.image_stride + ih * src.row_stride;
        for (int64_t ph = 0; ph < S; ++ph) {
          const Window& win = windows[p * S + ph];
          // Masked-off lanes are not read, so the address may point before the row. Full and
          // empty masks skip the masked load (an all-inside window is the common case; the
          // second vector is empty whenever the taps' window fits in 16 lanes).
          const __m512 v0 = win.lo == 0xFFFF ? _mm512_loadu_ps(row + win.offset)
                                             : _mm512_maskz_loadu_ps(win.lo, row + win.offset);
          const __m512 v1 = win.hi == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(win.hi, row + win.offset + 16);
          if (S == 1 && KW == 3) {  // the common kernels: shifts known at compile time
            store_shifted<3>(v0, v1, d, pc.store);
          } else if (S == 1 && KW == 5) {
            store_shifted<5>(v0, v1, d, pc.store);
          } else {
            const int first = taps.first_shift[ph];
            for (const int kw : taps.of[ph]) {
              const __m512 v = _mm512_permutex2var_ps(v0, shifts[taps.shift[kw] - first], v1);
              _mm512_mask_storeu_ps(d + kw * sgemm::kNR, pc.store, v);
            }
          }
        }
      }
    }
  }
}
#else
void im2col_panel(const Im2colSource&, const Taps&, int64_t, const ConvGeometry&, const PixelRun*, int, int64_t,
                  float*, std::vector<Piece>&, std::vector<Window>&) {}
#endif

#if defined(__x86_64__)
// Phase ph of one input row: d[i] = src[ph + i*s] for i < phase_len, zero past the row's end. One
// gather per 16 outputs (lanes past the row read nothing). The stems' inputs (AlexNet's 11x11/4,
// GoogLeNet's 7x7/2) are split on every call; against the element-by-element loop this was
// 1-3% faster on both stems at batch 16 and no different at batch 1 (2 threads, alternating
// builds, 4 rounds each).
__attribute__((target("avx512f"))) void split_row_phase(const float* src, float* d, int64_t W, int64_t s, int64_t ph,
                                                        int64_t phase_len) {
  const __m512i index = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32(static_cast<int>(s)));
  for (int64_t i = 0; i < phase_len; i += 16) {
    const int64_t first = ph + i * s;  // the input column of lane 0
    const int64_t inside = first < W ? (W - first + s - 1) / s : 0;
    const __mmask16 load = static_cast<__mmask16>(first_lanes(inside));
    // (a lane that is not loaded does not read: first may be past the row's end)
    const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), load, index, src + (inside > 0 ? first : 0), 4);
    _mm512_mask_storeu_ps(d + i, static_cast<__mmask16>(first_lanes(phase_len - i)), v);
  }
}
#endif

// The column phases of every input row for a column stride s > 1 (see Im2colSource):
// out[n][c][h][ph][i] = x[n][c][h][i*s + ph], zero past the row's end (images of x
// x_image_stride floats apart, out dense).
std::unique_ptr<PooledFloats> split_column_phases(const float* x, int64_t x_image_stride, const ConvGeometry& g,
                                                  int64_t phase_len) {
  const int64_t s = g.stride_w, W = g.in_w, rows_per_image = g.in_channels * g.in_h, rows = g.batch * rows_per_image;
  auto out = std::make_unique<PooledFloats>(rows * s * phase_len);
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* src = x + (r / rows_per_image) * x_image_stride + (r % rows_per_image) * W;
      float* dst = out->get() + r * s * phase_len;
      for (int64_t ph = 0; ph < s; ++ph) {
#if defined(__x86_64__)  // (the packed path runs only on AVX-512 CPUs)
        split_row_phase(src, dst + ph * phase_len, W, s, ph, phase_len);
#else
        float* d = dst + ph * phase_len;
        int64_t i = 0;
        for (; ph + i * s < W; ++i) d[i] = src[ph + i * s];
        for (; i < phase_len; ++i) d[i] = 0.f;
#endif
      }
    }
  });
  return out;
}

// One micro-kernel panel of a job: rows row0 .. row0 + mr - 1 of the job's segment seg, and
// where they sit in a task's scratch tile (rows of the task's panels, stacked).
struct PanelRef {
  int seg, mr;
  int64_t row0, tile_row;
};

}  // namespace

// How many pieces each job's panels are cut into, so that a small batch still shares its
// work evenly among the threads (GoogLeNet's 14 x 14 maps at batch 1 are 7 blocks: 4 on one
// thread, 3 on the other). Blocks that are many (~4 per thread) stay whole. So do blocks that
// already split evenly: each piece gathers the block's im2col panel again and reads its input,
// which cost more than the imbalance they remove -- unless a job's weights are over 512 KiB (a
// quarter of this machine's 2 MiB L2; GoogLeNet's 7 x 7 maps at batch 1: 2 blocks under 2-5
// MB). Then whole jobs per task would make each thread stream all of a job's weights from L3
// for its block, and the multiplies wait on them; cut among the threads, the panels let each
// read its share once and keep it in L2 for the other blocks. No piece is under two panels.
int64_t conv_row_pieces(int64_t tasks, int max_panels, int64_t job_weight_bytes) {
  const int64_t threads = at::get_num_threads(), want = 4 * threads;
  if (tasks >= want) return 1;
  if (tasks % threads == 0) {
    if (threads == 1 || job_weight_bytes <= (int64_t{512} << 10)) return 1;
    return std::max<int64_t>(1, std::min<int64_t>(max_panels / 2, threads));
  }
  return std::max<int64_t>(1, std::min<int64_t>(max_panels / 2, (want + tasks - 1) / tasks));
}

namespace {

// float32 NCHW on AVX-512 CPUs: the packed micro-kernel instead of BLAS. The weights are
// read in place, rows split into panels of at most 14 (heights balanced so that no rows are
// wasted on a short last panel): no packed copy is made per call (at batch 1 packing cost as
// much as the arithmetic on GoogLeNet's 14x14 and 7x7 maps) and none is cached, so none can
// be stale. The output pixels of all images form one sequence, cut into 32-pixel blocks (a
// 13 x 13 map is 169 pixels: per image that would be 6 blocks computing 192 columns, across
// the batch it is 5.3 blocks). A task is one block of one job, or of a piece of the job's
// panels when blocks are too few to share among the threads (batch 1 on small maps): it
// gathers the block's im2col panel straight into the micro-kernel's layout (K x 32, in L2; a
// 512-deep slice of it at a time) and runs its output tiles over it, the last reduction block
// adding the bias and applying the ReLU on the way to memory -- the output is written once.
// A block that spans two images is computed into a scratch tile and copied out. Tasks run
// block by block within a piece, so a thread's weights stay in its L2.
void conv_planar_direct(const float* x, int64_t x_image_stride, const std::vector<ConvJob>& jobs,
                        const ConvGeometry& g) {
  using namespace sgemm;
  const int64_t Cg = g.in_channels / g.groups;
  const int64_t KH = g.kernel_h, KW = g.kernel_w, K = Cg * KH * KW;
  const int64_t OW = g.out_w, P = g.out_h * g.out_w, Q = g.batch * P;
  const int64_t qblocks = (Q + kNR - 1) / kNR;
  // Each job's panels, in order, and the pieces they are cut into.
  std::vector<std::vector<PanelRef>> panels(jobs.size());
  int max_panels = 0;
  int64_t max_rows = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    int64_t job_rows = 0;
    for (size_t sg = 0; sg < jobs[j].segments.size(); ++sg) {
      const int64_t rows = jobs[j].segments[sg].rows;
      job_rows += rows;
      for (int i = 0; i < panel_count(rows); ++i) {
        panels[j].push_back(PanelRef{static_cast<int>(sg), panel_height(rows, i), panel_row0(rows, i), 0});
      }
    }
    max_panels = std::max(max_panels, static_cast<int>(panels[j].size()));
    max_rows = std::max(max_rows, job_rows);
  }
  const int64_t pieces_per_job = conv_row_pieces(static_cast<int64_t>(jobs.size()) * qblocks, max_panels,
                                                 max_rows * K * static_cast<int64_t>(sizeof(float)));
  const Taps taps(g);
  const bool pointwise = KH == 1 && KW == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
  Im2colSource src{x, x_image_stride, g.in_h * g.in_w, g.in_w, 0};
  std::unique_ptr<PooledFloats> phases;
  if (g.stride_w > 1) {
    const int64_t phase_len = (g.in_w + g.stride_w - 1) / g.stride_w, row = g.stride_w * phase_len;
    phases = split_column_phases(x, x_image_stride, g, phase_len);
    src = Im2colSource{phases->get(), g.in_channels * g.in_h * row, g.in_h * row, row, phase_len};
  }
  const int64_t tasks = static_cast<int64_t>(jobs.size()) * pieces_per_job * qblocks;
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> bpack(static_cast<size_t>(K * kNR));
    std::vector<float> ctile;  // for blocks that span images
    std::vector<Piece> pieces;
    std::vector<Window> windows;
    PixelRun runs[kNR];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t q0 = (t % qblocks) * kNR, np = std::min<int64_t>(kNR, Q - q0);
      const int64_t piece = (t / qblocks) % pieces_per_job;
      const ConvJob& job = jobs[t / qblocks / pieces_per_job];
      const std::vector<PanelRef>& all = panels[t / qblocks / pieces_per_job];
      const int64_t npanels = static_cast<int64_t>(all.size());
      const int64_t first = piece * npanels / pieces_per_job, last = (piece + 1) * npanels / pieces_per_job;
      if (first == last) continue;
      int nruns = 0;
      for (int64_t j = 0; j < np;) {
        const int64_t n = (q0 + j) / P, p = (q0 + j) % P, ow = p % OW, len = std::min(np - j, OW - ow);
        runs[nruns++] = PixelRun{n, p / OW, ow, j, len};
        j += len;
      }
      const bool one_image = runs[0].n == runs[nruns - 1].n;
      // A 1x1 convolution's im2col panel of a full block inside one image is the input itself
      // (32 consecutive pixels of each channel): the micro-kernel reads it in place.
      const float* bsrc = bpack.data();
      int64_t ldb = kNR;
      if (pointwise && one_image && np == kNR) {
        bsrc = x + runs[0].n * x_image_stride + job.in_channel0 * P + (q0 - runs[0].n * P);
        ldb = P;
      } else {
        im2col_panel(src, taps, job.in_channel0, g, runs, nruns, np, bpack.data(), pieces, windows);
      }
      int64_t tile_rows = 0;
      for (int64_t i = first; i < last; ++i) tile_rows += all[i].mr;
      if (!one_image) ctile.resize(static_cast<size_t>(tile_rows * kNR));
      for (int64_t kb = 0; kb < K; kb += kKC) {
        const int64_t kc = std::min<int64_t>(kKC, K - kb);
        int64_t tile_row = 0;
        for (int64_t i = first; i < last; ++i) {
          const PanelRef& pr = all[i];
          const ConvRows& sg = job.segments[pr.seg];
          float* c;
          int64_t ldc;
          if (one_image) {
            c = sg.y + runs[0].n * sg.y_image_stride + pr.row0 * P + (q0 - runs[0].n * P);
            ldc = P;
          } else {
            c = ctile.data() + tile_row * kNR;
            ldc = kNR;
          }
          micro_kernel(kc, sg.w + pr.row0 * K + kb, K, bsrc + kb * ldb, ldb, c, ldc, pr.mr, static_cast<int>(np), kb > 0,
                       kb + kc >= K, sg.b ? sg.b + pr.row0 : nullptr, sg.scale ? sg.scale + pr.row0 : nullptr);
          tile_row += pr.mr;
        }
      }
      if (!one_image) {  // copy each image's columns of the tile to that image's planes
        int64_t tile_row = 0;
        for (int64_t i = first; i < last; ++i) {
          const PanelRef& pr = all[i];
          const ConvRows& sg = job.segments[pr.seg];
          for (int r = 0; r < nruns;) {
            int e = r;
            while (e + 1 < nruns && runs[e + 1].n == runs[r].n) ++e;
            const int64_t n = runs[r].n, j0 = runs[r].j, count = runs[e].j + runs[e].len - j0;
            float* dst = sg.y + n * sg.y_image_stride + pr.row0 * P + runs[r].oh * OW + runs[r].ow;
            for (int64_t m = 0; m < pr.mr; ++m) {
              std::copy_n(ctile.data() + (tile_row + m) * kNR + j0, count, dst + m * P);
            }
            r = e + 1;
          }
          tile_row += pr.mr;
        }
      }
    }
  });
}

}  // namespace

bool packed_conv_supports(const ConvGeometry& g) { return Taps::supports(g); }

// 3 x 3 and 5 x 5 stride-1 convolutions by Winograd where the cost model (or FASTALEX_CPU_CONV) says so
// and the values allow it (conv_winograd_jobs declines non-finite and huge ones), else direct.
void conv_planar_jobs(const float* x, int64_t x_image_stride, const std::vector<ConvJob>& jobs, const ConvGeometry& g) {
  const ConvAlgo algo = conv_algo();
  if (algo != ConvAlgo::kDirect && winograd_supports(g, x_image_stride) &&
      (algo == ConvAlgo::kWinograd || winograd_preferred(g, jobs)) && conv_winograd_jobs(x, x_image_stride, jobs, g)) {
    return;
  }
  conv_planar_direct(x, x_image_stride, jobs, g);
}

void conv_planar_packed(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g,
                        const float* scale) {
  const int64_t Cg = g.in_channels / g.groups, OCg = g.out_channels / g.groups, K = Cg * g.kernel_h * g.kernel_w;
  const int64_t P = g.out_h * g.out_w;
  std::vector<ConvJob> jobs;
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    jobs.push_back(ConvJob{grp * Cg, {ConvRows{w + grp * OCg * K, b ? b + grp * OCg : nullptr, OCg,
                                               y + grp * OCg * P, g.out_channels * P,
                                               scale ? scale + grp * OCg : nullptr}}});
  }
  conv_planar_jobs(x, g.in_channels * g.in_h * g.in_w, jobs, g);
}

}  // namespace cpu
}  // namespace fastalex
