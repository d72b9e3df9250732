// The tile choice of the tensor-core conv (conv2d_relu_mma_kernel), host side and torch-free.
//
// Three block tiles (BM output pixels x BN output channels), 4 warps each: 128x128 (64x64 per
// warp), 128x64 (64x32) and 64x64 (32x32). Bigger warp tiles read fewer shared-memory bytes per
// MMA (192, 288 and 384), so they reach a larger fraction of the tensor pipe's peak (the
// static bounds of scripts/sass_report.py: 1.0 / 0.89 / 0.67 on sm_80), but they
// waste the part of the tile past the last pixel or channel and give fewer blocks to spread
// over the SMs. The model: blocks run in waves of (SMs x resident blocks per SM); the blocks
// resident on one SM share its tensor pipe, so a wave takes resident * BM * BN / efficiency;
// the choice is the tile with the least modelled time
//     time = ceil(blocks / (sm_count * resident)) * resident * BM * BN / efficiency
// (many waves: total tile area / efficiency, so big tiles win; one partial wave: the tile that
// spreads the work over the most SMs wins).
// The efficiencies follow those sm_80 bounds and the residencies the registers and shared
// memory per block; both are static estimates, not measurements: a GPU run should retune them.
#pragma once

#include <cstdint>

namespace fastalex {
namespace cuda {

enum class MmaTileChoice { k128x128, k128x64, k64x64 };

struct MmaTileModel {
  MmaTileChoice tile;
  int bm, bn;
  double efficiency;  // fraction of tensor peak a full wave of this tile is expected to reach
  int resident;       // blocks per SM (registers and shared memory)
};

inline constexpr MmaTileModel kMmaTileModels[] = {
    {MmaTileChoice::k128x128, 128, 128, 1.00, 2},
    {MmaTileChoice::k128x64, 128, 64, 0.89, 3},
    {MmaTileChoice::k64x64, 64, 64, 0.67, 4},
};

inline MmaTileChoice choose_mma_tile(int64_t pixels, int64_t out_channels_per_group, int64_t groups, int64_t sm_count) {
  MmaTileChoice best = MmaTileChoice::k64x64;
  double best_time = 0;
  bool first = true;
  for (const MmaTileModel& m : kMmaTileModels) {
    const int64_t blocks = (pixels + m.bm - 1) / m.bm * ((out_channels_per_group + m.bn - 1) / m.bn) * groups;
    const int64_t wave = (sm_count > 0 ? sm_count : 1) * m.resident;
    const double time = double((blocks + wave - 1) / wave) * m.resident * m.bm * m.bn / m.efficiency;
    if (first || time < best_time) {
      best = m.tile;
      best_time = time;
      first = false;
    }
  }
  return best;
}

}  // namespace cuda
}  // namespace fastalex
