#pragma once
/// @file
/// @brief The read-out of star/cuda/attention_readout.cuh on tensor cores, for float16 and
/// bfloat16 on compute capability 8.0 and later. The scores of 16 image rows against 8
/// selected keys come out of `mma.sync` m16n8k16 (float32 accumulation), one instruction per
/// 16 dimensions, and each warp copies the operands of its next head into shared memory
/// (`cp.async`) while it works on the current one, so the kernel is bound by reading `q`. A
/// block owns 32 image rows of one batch element for all heads; its 8 warps split the heads
/// and add their sums in a fixed order, so the result does not depend on scheduling.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "star/core/strided_view.hpp"
#include "star/cuda/api.cuh"
#include "star/cuda/common.cuh"
#include "star/cuda/ptx.cuh"
#include "star/cuda/readout_chunk.cuh"

namespace star::cuda::readout_detail {

/// @brief Warps per block; warp `w` takes heads `w, w + 8, ...`.
inline constexpr int mma_warps = 8;
/// @brief Image rows per block: two m16 tiles, so that each key fragment serves 32 rows.
inline constexpr int mma_rows = 32;
/// @brief Dimensions of `D` per pass: each lane of a quad holds 16 of them per row, in two
/// pieces of 8; longer heads take several passes.
inline constexpr int mma_pass_dims = 64;

/// @brief Puts elements `first .. first + 8` of `row` (elements `stride` apart, `dim` of them)
/// into `target`, zeros past `dim` or where `row` is null: a 16-byte copy that completes later
/// when `Vectorized` (`stride` 1, `dim` a multiple of 8, rows 16-byte aligned; `any` is a
/// readable address for the copies that read nothing), element by element otherwise.
template <class T, bool Vectorized>
__device__ inline void stage_piece(uint4* target, const T* row, std::int64_t stride, int dim,
                                   int first, const T* any) {
  if constexpr (Vectorized) {
    const bool inside = row && first < dim;
    copy_async<16>(target, inside ? row + first : any, inside);
  } else {
    T elements[8];
#pragma unroll
    for (int e = 0; e < 8; ++e)
      elements[e] = row && first + e < dim ? row[(first + e) * stride] : T(0.0f);
    memcpy(target, elements, sizeof(elements));
  }
}

/// @brief Where one warp stages the operands of one (head, pass) in shared memory, each lane
/// in its own 16-byte slots (slot `i` of lane `l` at `32 i + l`, so the lanes of a warp read
/// 512 contiguous bytes without bank conflicts):
/// - `q(m, r, piece)`: rows `g` (`r = 0`) and `g + 8` (`r = 1`) of m16 tile `m`, `g` = lane / 4;
/// - `key(nt, piece)`: key `g` of n8 tile `nt`;
/// - `lse`: the LSE of the four rows, `[m][r]` (read on the last pass only).
///
/// Each piece holds 8 dimensions. The dot product does not depend on the order of `D`, so
/// lane `c` = lane % 4 takes dimensions `pass * 64 + 8 c + 32 piece .. + 8` of `q` and keys
/// alike: k16 step `s` reads 4 of them from piece `s / 2`, the first two as the k-slots
/// `2c, 2c + 1` of `mma.m16n8k16` and the next two as `2c + 8, 2c + 9`. The four lanes of a
/// row then load 64 contiguous bytes per piece.
template <int NTiles>
struct operand_slots {
  static constexpr int count = 8 + 2 * NTiles + 1;  ///< 16-byte slots per lane
  uint4* base;                                       ///< this lane's slot 0

  /// @brief Piece `piece` of this lane's top (`r` 0) or bottom (`r` 1) row of m16 tile `m`.
  __device__ uint4* q(int m, int r, int piece) const { return base + 32 * (4 * m + 2 * r + piece); }
  /// @brief Piece `piece` of this lane's key of n8 tile `nt`.
  __device__ uint4* key(int nt, int piece) const { return base + 32 * (8 + 2 * nt + piece); }
  /// @brief The LSE of the stage's rows (the slot after the keys).
  __device__ float* lse() const { return reinterpret_cast<float*>(base + 32 * (8 + 2 * NTiles)); }
};

/// @brief Stages in flight per warp: the operands of the next (head, pass) are copied while
/// the current ones are used.
inline constexpr int mma_stages = 2;

/// @brief Dynamic shared memory of a tensor-core read-out block.
template <int NTiles>
constexpr std::size_t tensor_core_shared_bytes() {
  return sizeof(uint4) * 32 * operand_slots<NTiles>::count * mma_stages * mma_warps;
}

/// @brief All the shared memory of the largest tensor-core block: the staged operands of two
/// n8 tiles and the warps' row sums.
constexpr std::size_t tensor_core_block_bytes() {
  return tensor_core_shared_bytes<2>() + sizeof(float) * mma_warps * mma_rows;
}

/// @brief Tensor-core read-out of one chunk of columns: for every image row of the block,
/// `relevance[b, n] += block_weight / H * sum_h sum_j w_j exp(s q . k_j - lse)` (`=` unless
/// `accumulate`), and the probabilities where `probabilities.data` is set. Grid
/// `(ceil(N / 32), B)` of `mma_warps * 32` threads, `tensor_core_shared_bytes<NTiles>()` of
/// dynamic shared memory; `NTiles` n8 tiles cover the chunk's columns.
template <class T, bool Vectorized, int NTiles>
__global__ void __launch_bounds__(mma_warps * 32, 2)
tensor_core_readout_kernel(strided_view<const T, 4> q, strided_view<const T, 4> k,
                           strided_view<const float, 3> lse, column_chunk chunk,
                           std::int64_t image_begin, std::int64_t image_tokens, float scale,
                           float block_weight, bool accumulate,
                           strided_view<float, 2> relevance,
                           strided_view<float, 4> probabilities) {
  extern __shared__ uint4 staged[];  // [warp][stage][slot][lane]
  __shared__ float warp_sums[mma_warps][mma_rows];  // counted in tensor_core_block_bytes
  const int b = static_cast<int>(blockIdx.y);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, c = lane % 4;
  const int heads = static_cast<int>(q.extents[1]), dim = static_cast<int>(q.extents[3]);
  const int passes = (dim + mma_pass_dims - 1) / mma_pass_dims;
  const int units = (heads - warp + mma_warps - 1) / mma_warps * passes;  // (head, pass) pairs
  const std::int64_t block_row = static_cast<std::int64_t>(blockIdx.x) * mma_rows;
  const auto row_of = [&](int m, int r) { return block_row + m * 16 + r * 8 + g; };
  const auto slots_of = [&](int buffer) {
    constexpr int count = operand_slots<NTiles>::count;
    return operand_slots<NTiles>{staged + (warp * mma_stages + buffer) * count * 32 + lane};
  };

  // What the lane reads, as offsets at head 0 of batch element b, computed once: its four
  // image rows (row 2m + r of the lane is 8 (2m + r) rows after its first) in q and the LSE,
  // and key g of each n8 tile in k; a unit adds its head's offset.
  const std::int64_t first_row = image_begin + block_row + g;
  const std::int64_t q_rows = b * q.strides[0] + first_row * q.strides[2];
  const std::int64_t lse_rows = b * lse.strides[0] + first_row * lse.strides[2];
  unsigned rows_inside = 0;  // bit 2m + r: the row is an image row (not past N)
#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int r = 0; r < 2; ++r)
      rows_inside |= (row_of(m, r) < image_tokens ? 1u : 0u) << (2 * m + r);
  // offset of key g of tile nt, >= 0 (tensor cores take non-negative strides); -1 past the chunk
  std::int64_t key_rows[NTiles];
  float weights[NTiles][2];       // w_j of this lane's columns 2c, 2c + 1 of each tile (0 past it)
  unsigned columns_inside = 0;    // bit 2 nt + parity: that column is in the chunk
#pragma unroll
  for (int nt = 0; nt < NTiles; ++nt) {
    const int j = nt * 8 + g;
    key_rows[nt] = j < chunk.count ? b * k.strides[0] + chunk.position[j] * k.strides[2] : -1;
#pragma unroll
    for (int parity = 0; parity < 2; ++parity) {
      const int column = nt * 8 + 2 * c + parity;
      weights[nt][parity] = column < chunk.count ? chunk.weight[column] : 0.0f;
      columns_inside |= (column < chunk.count ? 1u : 0u) << (2 * nt + parity);
    }
  }

  // Starts staging the operands of (head h, pass) into buffer `buffer`, as one group of copies.
  const auto stage = [&](int h, int pass, int buffer) {
    const operand_slots<NTiles> slots = slots_of(buffer);
    const int first = pass * mma_pass_dims + 8 * c;
    const std::int64_t q_head = q_rows + h * q.strides[1];
    const std::int64_t lse_head = lse_rows + h * lse.strides[1];
    const bool lse_pass = pass == passes - 1;
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = 2 * m + r;
        const bool inside = rows_inside >> row & 1u;
        const T* q_row = inside ? q.data + (q_head + row * 8 * q.strides[2]) : nullptr;
#pragma unroll
        for (int piece = 0; piece < 2; ++piece)
          stage_piece<T, Vectorized>(slots.q(m, r, piece), q_row, q.strides[3], dim,
                                     first + 32 * piece, q.data);
        const bool lse_wanted = inside && lse_pass;
        copy_async<4>(slots.lse() + row,
                      lse_wanted ? lse.data + (lse_head + row * 8 * lse.strides[2]) : lse.data,
                      lse_wanted);
      }
    const T* k_head = k.data + h * k.strides[1];
#pragma unroll
    for (int nt = 0; nt < NTiles; ++nt) {
      const T* key = key_rows[nt] >= 0 ? k_head + key_rows[nt] : nullptr;
#pragma unroll
      for (int piece = 0; piece < 2; ++piece)
        stage_piece<T, Vectorized>(slots.key(nt, piece), key, k.strides[3], dim,
                                   first + 32 * piece, k.data);
    }
    commit_copies();
  };

  constexpr float log2e = 1.4426950408889634f;
  const float scale_log2 = scale * log2e;  // exp(s x - lse) = 2^(x s log2 e - lse log2 e)
  float scores[2][NTiles][4] = {};  // [m tile][n tile][mma accumulator]
  float row_sums[2][2] = {};        // [m tile][row g, g + 8]: this lane's columns, all heads
  int h = warp, pass = 0;           // of the unit being worked on
  if (units > 0) stage(h, pass, 0);
  for (int unit = 0; unit < units; ++unit) {
    const int next_pass = pass + 1 == passes ? 0 : pass + 1;
    const int next_h = next_pass == 0 ? h + mma_warps : h;
    if (unit + 1 < units) {
      stage(next_h, next_pass, (unit + 1) % mma_stages);
      wait_for_copies<1>();
    } else {
      wait_for_copies<0>();
    }
    const operand_slots<NTiles> slots = slots_of(unit % mma_stages);
#pragma unroll
    for (int piece = 0; piece < 2; ++piece) {
      uint4 keys[NTiles];
#pragma unroll
      for (int nt = 0; nt < NTiles; ++nt) keys[nt] = *slots.key(nt, piece);
#pragma unroll
      for (int m = 0; m < 2; ++m) {
        const uint4 top = *slots.q(m, 0, piece), bottom = *slots.q(m, 1, piece);
        const unsigned low[4] = {top.x, bottom.x, top.y, bottom.y};
        const unsigned high[4] = {top.z, bottom.z, top.w, bottom.w};
#pragma unroll
        for (int nt = 0; nt < NTiles; ++nt) {
          mma_16x8x16<T>(scores[m][nt], low, keys[nt].x, keys[nt].y);
          mma_16x8x16<T>(scores[m][nt], high, keys[nt].z, keys[nt].w);
        }
      }
    }
    if (pass == passes - 1) {
#pragma unroll
      for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const float lse_log2 = slots.lse()[2 * m + r] * log2e;
#pragma unroll
          for (int nt = 0; nt < NTiles; ++nt)
#pragma unroll
            for (int parity = 0; parity < 2; ++parity) {
              float& score = scores[m][nt][2 * r + parity];
              // 0 past the chunk: never 0 times an overflowed 2^(-lse')
              const bool column_inside = columns_inside >> (2 * nt + parity) & 1u;
              const float p = column_inside ? exp2_approx(score * scale_log2 - lse_log2) : 0.0f;
              row_sums[m][r] += weights[nt][parity] * p;
              score = 0.0f;
              const int j = nt * 8 + 2 * c + parity;
              if (probabilities.data && j < chunk.count && (rows_inside >> (2 * m + r) & 1u))
                probabilities(b, h, row_of(m, r), chunk.first + j) = p;
            }
        }
    }
    h = next_h;
    pass = next_pass;
  }

#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float sum = row_sums[m][r];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      if (c == 0) warp_sums[warp][m * 16 + r * 8 + g] = sum;
    }
  __syncthreads();
  const std::int64_t n = block_row + threadIdx.x;
  if (threadIdx.x < mma_rows && n < image_tokens) {
    float total = 0.0f;
    for (int w = 0; w < mma_warps; ++w) total += warp_sums[w][threadIdx.x];
    const float map = block_weight / static_cast<float>(heads) * total;
    relevance(b, n) = accumulate ? relevance(b, n) + map : map;
  }
}

/// @brief Lets one tensor-core kernel take its dynamic shared memory (above the default 48 KiB)
/// on the current device, and as much of L1 as shared memory as the device allows, so that two
/// blocks fit on an SM where there is room (228 KiB on sm_90).
template <class T, bool Vectorized, int NTiles>
bool allow_shared_memory() {
  const auto kernel = tensor_core_readout_kernel<T, Vectorized, NTiles>;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(tensor_core_shared_bytes<NTiles>())) ==
             cudaSuccess &&
         cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                              static_cast<int>(cudaSharedmemCarveoutMaxShared)) == cudaSuccess;
}

/// @brief Whether the tensor-core read-out of `T` can run on `device` (the current one), and if
/// so, sets up its kernels there: compute capability 8.0 or later, in the compiled code too (a
/// build for an older architecture holds only traps), and room for the staged operands of a
/// block (sm_86 and sm_89 allow a block 99 KiB, less than the 104 KiB of two n8 tiles: CUDA
/// cores there). Where the caller has no error pending, leaves none of its own behind for
/// `cudaGetLastError`; a pending one it does not clear, though a failed query may replace it
/// with its own.
template <class T>
bool prepare_tensor_core_kernels(int device) {
  const bool caller_error_pending = cudaPeekAtLastError() != cudaSuccess;
  int major = 0, shared = 0;
  cudaFuncAttributes compiled{};
  bool usable =
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
      cudaDeviceGetAttribute(&shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) ==
          cudaSuccess &&
      major >= 8 && static_cast<std::size_t>(shared) >= tensor_core_block_bytes() &&
      cudaFuncGetAttributes(&compiled, tensor_core_readout_kernel<T, true, 2>) == cudaSuccess &&
      compiled.ptxVersion >= 80;
  usable = usable && allow_shared_memory<T, true, 1>() && allow_shared_memory<T, true, 2>() &&
           allow_shared_memory<T, false, 1>() && allow_shared_memory<T, false, 2>();
  // a failed query is an answer here, not an error to report
  if (!usable && !caller_error_pending) cudaGetLastError();
  return usable;
}

/// @brief Whether `accumulate_relevance<T>` runs on tensor cores on the current device: 16-bit
/// `T` where `prepare_tensor_core_kernels` allows it, asked once per device.
template <class T>
bool readout_uses_tensor_cores() {
  if constexpr (sizeof(T) != 2) {
    return false;
  } else {
    static std::array<std::atomic<int>, 64> known{};  // per device: 0 not asked, 1 yes, -1 no
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    if (device >= static_cast<int>(known.size())) return prepare_tensor_core_kernels<T>(device);
    if (known[device] == 0) known[device] = prepare_tensor_core_kernels<T>(device) ? 1 : -1;
    return known[device] > 0;
  }
}

/// @brief Queues the tensor-core read-out of one chunk on `stream`; the arguments are checked
/// by the caller, and `readout_uses_tensor_cores<T>()` said yes on this device.
template <class T>
  requires(sizeof(T) == 2)
cudaError_t tensor_core_readout(const readout_inputs<T>& in, const column_chunk& chunk,
                                std::int64_t image_begin, std::int64_t image_tokens,
                                strided_view<float, 2> relevance,
                                strided_view<float, 4> probabilities, cudaStream_t stream) {
  const bool vectorized = rows_load_as_vectors(in.q) && rows_load_as_vectors(in.k);
  const auto launch = [&]<int NTiles>(std::integral_constant<int, NTiles>) {
    const auto kernel = vectorized ? tensor_core_readout_kernel<T, true, NTiles>
                                   : tensor_core_readout_kernel<T, false, NTiles>;
    constexpr std::size_t shared = tensor_core_shared_bytes<NTiles>();
    const dim3 grid(blocks_for(image_tokens, mma_rows), static_cast<unsigned>(in.q.extents[0]));
    kernel<<<grid, mma_warps * 32, shared, stream>>>(
        in.q, in.k, in.lse, chunk, image_begin, image_tokens, in.scale, in.block_weight,
        in.accumulate || chunk.first > 0, relevance, probabilities);
    return cudaGetLastError();
  };
  return chunk.count <= 8 ? launch(std::integral_constant<int, 1>{})
                          : launch(std::integral_constant<int, 2>{});
}

}  // namespace star::cuda::readout_detail
