#pragma once
/// @file
/// @brief The read-out of star/cuda/attention_readout.cuh on CUDA cores, for every element
/// type and device: lanes of a row split `D`, the chunk's keys sit in shared memory, and the
/// per-head sums go through a `[H, B, N]` workspace that a second kernel averages over heads.

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "star/core/strided_view.hpp"
#include "star/cuda/api.cuh"
#include "star/cuda/common.cuh"
#include "star/cuda/readout_chunk.cuh"

namespace star::cuda::readout_detail {

/// @brief Threads that share one image row, each summing over its own slices of `D`.
inline constexpr int threads_per_row = 8;
/// @brief Rows each thread works on at once, so that every key value read from shared memory
/// serves that many rows.
inline constexpr int rows_per_thread = 2;
/// @brief Threads per CUDA block.
inline constexpr int block_threads = 256;
/// @brief Groups of `threads_per_row` threads in a block; group `g` takes rows `g + i * 32`
/// of a tile.
inline constexpr int row_groups = block_threads / threads_per_row;
/// @brief Image rows per tile, the rows a block works on at once.
inline constexpr int rows_per_tile = row_groups * rows_per_thread;
/// @brief Tiles per CUDA block: the keys are loaded once for all of them, and the rows of the
/// next step are loaded while the current ones are used.
inline constexpr int tiles_per_block = 4;
/// @brief Columns whose dot products each thread of a row ends with after the reduce-scatter.
inline constexpr int columns_per_thread = chunk_columns / threads_per_row;
static_assert(columns_per_thread == 2, "the reduce-scatter halves the columns 3 times");

/// @brief Elements `first .. first + width` of row `(b, h, t)` of `q` as floats (zeros past
/// `D`); one 16-byte load when `Vectorized`.
template <class T, bool Vectorized>
__device__ inline void load_slice(const strided_view<const T, 4>& q, int b, int h, std::int64_t t,
                                  int first, float (&out)[vector_width<T>]) {
  constexpr int width = vector_width<T>;
  if constexpr (Vectorized) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(&q(b, h, t, first)));
    T elements[width];
    memcpy(elements, &raw, sizeof(raw));
#pragma unroll
    for (int e = 0; e < width; ++e) out[e] = to_float(elements[e]);
  } else {
    const int dim = static_cast<int>(q.extents[3]);
#pragma unroll
    for (int e = 0; e < width; ++e)
      out[e] = first + e < dim ? to_float(q(b, h, t, first + e)) : 0.0f;
  }
}

/// @brief Reduce-scatter of the row's partial dot products over its `threads_per_row`
/// adjacent lanes, columns `[0, 2 Half)` of `dot` in, halved per step: afterwards `dot[0]`,
/// `dot[1]` of lane `l` hold the full dot products of columns `2 l` and `2 l + 1` (14
/// shuffles where a butterfly on every column takes 48).
template <int Half = chunk_columns / 2>
__device__ inline void reduce_scatter_columns(float (&dot)[chunk_columns], int lane) {
  constexpr int offset = Half * threads_per_row / chunk_columns;  // the partner lane's distance
  const bool upper = (lane & offset) != 0;  // keeps the upper half of the columns
#pragma unroll
  for (int i = 0; i < Half; ++i) {
    const float sent = upper ? dot[i] : dot[i + Half];
    const float kept = upper ? dot[i + Half] : dot[i];
    dot[i] = kept + __shfl_xor_sync(0xffffffffu, sent, offset);
  }
  if constexpr (offset > 1) reduce_scatter_columns<Half / 2>(dot, lane);
}

/// @brief The weighted sum over the chunk's columns of the probabilities of the tile's rows
/// (`dot` holds their finished dot products after the reduce-scatter), written to
/// `partial[h][b][n]` on the first chunk and added on later ones. Every lane takes part.
__device__ inline void finish_tile(float (&dot)[rows_per_thread][chunk_columns],
                                   std::int64_t first_row, int lane, int b, int h,
                                   const strided_view<const float, 3>& lse,
                                   const column_chunk& chunk, std::int64_t image_begin,
                                   std::int64_t image_tokens, float scale, bool first_chunk,
                                   float* partial, const strided_view<float, 4>& probabilities) {
#pragma unroll
  for (int r = 0; r < rows_per_thread; ++r) {
    reduce_scatter_columns(dot[r], lane);
    const std::int64_t n = first_row + r * row_groups;
    float weighted = 0.0f;
    if (n < image_tokens) {
      const float row_lse = lse(b, h, image_begin + n);
#pragma unroll
      for (int c = 0; c < columns_per_thread; ++c) {
        const int j = lane * columns_per_thread + c;
        if (j >= chunk.count) break;
        const float p = __expf(scale * dot[r][c] - row_lse);
        if (probabilities.data) probabilities(b, h, n, chunk.first + j) = p;
        weighted += chunk.weight[j] * p;
      }
    }
#pragma unroll
    for (int offset = threads_per_row / 2; offset > 0; offset /= 2)
      weighted += __shfl_xor_sync(0xffffffffu, weighted, offset);
    if (n < image_tokens && lane == 0) {
      float& slot = partial[(static_cast<std::int64_t>(h) * gridDim.y + b) * image_tokens + n];
      slot = first_chunk ? weighted : slot + weighted;
    }
  }
}

/// @brief Per (head, batch, image row), the weighted sum over the chunk's columns of the
/// probabilities, written to `partial[h][b][n]` on the first chunk and added on later ones.
/// Grid `(ceil(tiles / tiles_per_block), B, H)` of `block_threads`, block `x` taking tiles
/// `x, x + gridDim.x, ...`; dynamic shared memory: `chunk_columns * D_pad` floats, `D_pad = D`
/// rounded up to `vector_width<T>`. A thread walks its (tile, slice) steps with the q values
/// of the next step loaded while the current ones are used.
template <class T, bool Vectorized>
__global__ void __launch_bounds__(block_threads, 2)
selected_columns_kernel(strided_view<const T, 4> q, strided_view<const T, 4> k,
                        strided_view<const float, 3> lse, column_chunk chunk,
                        std::int64_t image_begin, std::int64_t image_tokens, float scale,
                        bool first_chunk, float* partial, strided_view<float, 4> probabilities) {
  constexpr int width = vector_width<T>, quads = width / 4;
  // Keys as float4, [chunk_columns][quads][slices]: the lanes of a row read adjacent float4s
  extern __shared__ float4 keys[];
  const int b = blockIdx.y, h = blockIdx.z;
  const int dim = static_cast<int>(q.extents[3]);  // <= 768: 32-bit index arithmetic suffices
  const int slices = (dim + width - 1) / width;
  float* key_values = reinterpret_cast<float*>(keys);
  for (int i = static_cast<int>(threadIdx.x); i < chunk_columns * slices * width;
       i += block_threads) {
    const int j = i / (slices * width), d = i - j * slices * width;
    const int slice = d / width, quad = d % width / 4;
    key_values[((j * quads + quad) * slices + slice) * 4 + d % 4] =
        j < chunk.count && d < dim ? to_float(k(b, h, chunk.position[j], d)) : 0.0f;
  }
  __syncthreads();

  const int lane = static_cast<int>(threadIdx.x) % threads_per_row;
  const int group = static_cast<int>(threadIdx.x) / threads_per_row;
  // the same step count on every lane, so that all reach each tile's shuffles together
  const int steps_per_tile = (slices + threads_per_row - 1) / threads_per_row;
  const int tiles = static_cast<int>((image_tokens + rows_per_tile - 1) / rows_per_tile);
  const int my_tiles = (tiles - static_cast<int>(blockIdx.x) + static_cast<int>(gridDim.x) - 1) /
                       static_cast<int>(gridDim.x);
  const auto first_row_of = [&](int step) {
    const int tile =
        static_cast<int>(blockIdx.x) + step / steps_per_tile * static_cast<int>(gridDim.x);
    return static_cast<std::int64_t>(tile) * rows_per_tile + group;
  };
  const auto load_step = [&](int step, float (&out)[rows_per_thread][width]) {
    const std::int64_t first_row = first_row_of(step);
    const int slice = lane + step % steps_per_tile * threads_per_row;
#pragma unroll
    for (int r = 0; r < rows_per_thread; ++r) {
      const std::int64_t n = first_row + r * row_groups;
      if (n < image_tokens && slice < slices)
        load_slice<T, Vectorized>(q, b, h, image_begin + n, slice * width, out[r]);
      else
        for (float& x : out[r]) x = 0.0f;
    }
  };

  float q_next[rows_per_thread][width];
  load_step(0, q_next);
  float dot[rows_per_thread][chunk_columns] = {};
  for (int step = 0; step < my_tiles * steps_per_tile; ++step) {
    float q_now[rows_per_thread][width];
#pragma unroll
    for (int r = 0; r < rows_per_thread; ++r)
#pragma unroll
      for (int e = 0; e < width; ++e) q_now[r][e] = q_next[r][e];
    if (step + 1 < my_tiles * steps_per_tile) load_step(step + 1, q_next);
    const int slice = lane + step % steps_per_tile * threads_per_row;
    if (slice < slices) {
#pragma unroll
      for (int quad = 0; quad < quads; ++quad)
#pragma unroll
        for (int j = 0; j < chunk_columns; ++j) {
          const float4 key = keys[(j * quads + quad) * slices + slice];
#pragma unroll
          for (int r = 0; r < rows_per_thread; ++r)
            dot[r][j] += q_now[r][4 * quad] * key.x + q_now[r][4 * quad + 1] * key.y +
                         q_now[r][4 * quad + 2] * key.z + q_now[r][4 * quad + 3] * key.w;
        }
    }
    if ((step + 1) % steps_per_tile == 0) {
      finish_tile(dot, first_row_of(step), lane, b, h, lse, chunk, image_begin, image_tokens,
                  scale, first_chunk, partial, probabilities);
#pragma unroll
      for (int r = 0; r < rows_per_thread; ++r)
#pragma unroll
        for (int j = 0; j < chunk_columns; ++j) dot[r][j] = 0.0f;
    }
  }
}

/// @brief `relevance[b, n] += block_weight / H * sum_h partial[h][b][n]` (`=` unless
/// `accumulate`), one thread per (b, n); a template over the partial sums' type, so that the
/// header defines it once for every file.
template <class Partial>
__global__ void head_mean_kernel(const Partial* partial, std::int64_t heads, float block_weight,
                                 bool accumulate, strided_view<float, 2> relevance) {
  const std::int64_t batch = relevance.extents[0], image_tokens = relevance.extents[1];
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= batch * image_tokens) return;
  float sum = 0.0f;
  for (std::int64_t h = 0; h < heads; ++h) sum += to_float(partial[h * batch * image_tokens + i]);
  const float map = block_weight / static_cast<float>(heads) * sum;
  float& target = relevance(i / image_tokens, i % image_tokens);
  target = accumulate ? target + map : map;
}

/// @brief Queues the CUDA-core read-out of one chunk on `stream`: the weighted sums per head go
/// to `partial` ([H, B, N] floats, written on the first chunk and added to on later ones).
/// The arguments are checked by the caller.
template <class T>
cudaError_t cuda_core_readout(const readout_inputs<T>& in, const column_chunk& chunk,
                              std::int64_t image_begin, std::int64_t image_tokens,
                              bool first_chunk, float* partial,
                              strided_view<float, 4> probabilities, cudaStream_t stream) {
  const std::int64_t batch = in.q.extents[0], heads = in.q.extents[1], head_dim = in.q.extents[3];
  constexpr std::int64_t width = vector_width<T>;
  const auto kernel = rows_load_as_vectors(in.q) ? selected_columns_kernel<T, true>
                                                 : selected_columns_kernel<T, false>;
  const dim3 grid(blocks_for(blocks_for(image_tokens, rows_per_tile), tiles_per_block),
                  static_cast<unsigned>(batch), static_cast<unsigned>(heads));
  const std::size_t padded_dim = (head_dim + width - 1) / width * width;
  const std::size_t shared = chunk_columns * padded_dim * sizeof(float);
  kernel<<<grid, block_threads, shared, stream>>>(in.q, in.k, in.lse, chunk, image_begin,
                                                  image_tokens, in.scale, first_chunk, partial,
                                                  probabilities);
  return cudaGetLastError();
}

/// @brief Queues `relevance += block_weight / H * sum_h partial[h]` (`=` unless
/// `accumulate`) on `stream`.
template <class Partial>
cudaError_t store_head_mean(const Partial* partial, std::int64_t heads, float block_weight,
                            bool accumulate, strided_view<float, 2> relevance,
                            cudaStream_t stream) {
  const std::int64_t rows = relevance.extents[0] * relevance.extents[1];
  head_mean_kernel<<<blocks_for(rows, row_block_threads), row_block_threads, 0, stream>>>(
      partial, heads, block_weight, accumulate, relevance);
  return cudaGetLastError();
}

}  // namespace star::cuda::readout_detail
