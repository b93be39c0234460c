#pragma once
/// @file
/// @brief Fused relevance read-out (star-method.md §3): for the selected text columns `S`,
/// `R[b, n] += block_weight * sum_j w_j * mean_h exp(s q_n . k_j - LSE[b, h, n])` (the LSE
/// of image row `n`, at `image_begin + n` of the joint sequence) in one pass
/// over `q`, never forming the `N x T` scores; optionally also the probabilities themselves.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "star/core/strided_view.hpp"
#include "star/core/token_layout.hpp"
#include "star/cuda/api.cuh"
#include "star/cuda/common.cuh"

namespace star::cuda {

namespace readout_detail {

/// @brief Columns handled by one launch (their partial dot products live in registers).
inline constexpr int chunk_columns = 16;
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

/// @brief Elements of `T` in one 16-byte load: a thread's slice of `D`, `slice * width` to
/// `slice * width + width`, is read with one instruction where `q` allows it.
template <class T>
inline constexpr int vector_width = 16 / static_cast<int>(sizeof(T));

/// @brief Up to `chunk_columns` selected columns, passed by value as a kernel parameter.
struct column_chunk {
  int count = 0;                            ///< columns used, <= chunk_columns
  int first = 0;                            ///< index in `S` of the first one
  std::int64_t position[chunk_columns]{};   ///< joint-sequence positions of the keys
  float weight[chunk_columns]{};            ///< `w_j`
};

/// @brief Whether every row of `q` can be read with 16-byte loads: `D`-contiguous rows whose
/// starts are 16-byte aligned.
template <class T>
bool rows_load_as_vectors(const strided_view<const T, 4>& q) {
  constexpr std::int64_t width = vector_width<T>;
  return q.strides[3] == 1 && q.extents[3] % width == 0 && q.strides[0] % width == 0 &&
         q.strides[1] % width == 0 && q.strides[2] % width == 0 &&
         reinterpret_cast<std::uintptr_t>(q.data) % 16 == 0;
}

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
    for (int e = 0; e < width; ++e) out[e] = first + e < dim ? to_float(q(b, h, t, first + e)) : 0.0f;
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
template <class T>
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
    const int tile = static_cast<int>(blockIdx.x) + step / steps_per_tile * static_cast<int>(gridDim.x);
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
      finish_tile<T>(dot, first_row_of(step), lane, b, h, lse, chunk, image_begin, image_tokens,
                     scale, first_chunk, partial, probabilities);
#pragma unroll
      for (int r = 0; r < rows_per_thread; ++r)
#pragma unroll
        for (int j = 0; j < chunk_columns; ++j) dot[r][j] = 0.0f;
    }
  }
}

/// @brief `relevance[b, n] += block_weight / H * sum_h partial[h][b][n]`, one thread per (b, n).
static __global__ void head_mean_kernel(const float* partial, std::int64_t heads,
                                        float block_weight, strided_view<float, 2> relevance) {
  const std::int64_t batch = relevance.extents[0], image_tokens = relevance.extents[1];
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= batch * image_tokens) return;
  float sum = 0.0f;
  for (std::int64_t h = 0; h < heads; ++h) sum += partial[h * batch * image_tokens + i];
  relevance(i / image_tokens, i % image_tokens) += block_weight / static_cast<float>(heads) * sum;
}

}  // namespace readout_detail

// Documented at its declaration in star/cuda/api.cuh.
template <class T>
  requires is_kernel_element<T>
cudaError_t accumulate_relevance(const readout_inputs<T>& in, const token_layout& layout,
                                 strided_view<float, 2> relevance,
                                 strided_view<float, 4> probabilities, void* workspace,
                                 std::size_t workspace_bytes, cudaStream_t stream) {
  using namespace readout_detail;
  const auto [batch, heads, tokens, head_dim] = in.q.extents;
  const std::int64_t image_tokens = layout.image_tokens(), columns = in.columns.size();
  const bool shapes_agree =
      in.k.extents == in.q.extents && tokens == layout.total_tokens() &&
      in.lse.extents == std::array<std::int64_t, 3>{batch, heads, tokens} &&
      relevance.extents == std::array<std::int64_t, 2>{batch, image_tokens} &&
      (!probabilities.data ||
       probabilities.extents == std::array<std::int64_t, 4>{batch, heads, image_tokens, columns});
  const bool columns_valid =
      columns >= 1 && in.weights.size() == in.columns.size() &&
      std::all_of(in.columns.begin(), in.columns.end(),
                  [&](std::int64_t j) { return j >= 0 && j < layout.text_tokens(); });
  if (!shapes_agree || !columns_valid || batch < 1 || heads < 1 || image_tokens < 1 ||
      head_dim < 1 || head_dim > max_readout_head_dim || batch > max_grid_yz ||
      heads > max_grid_yz || !(in.scale > 0.0f) ||
      workspace_bytes < relevance_workspace_bytes(batch, heads, image_tokens))
    return cudaErrorInvalidValue;

  constexpr std::int64_t width = vector_width<T>;
  const auto kernel = rows_load_as_vectors(in.q) ? selected_columns_kernel<T, true>
                                                 : selected_columns_kernel<T, false>;
  float* partial = static_cast<float*>(workspace);
  const dim3 grid(blocks_for(blocks_for(image_tokens, rows_per_tile), tiles_per_block),
                  static_cast<unsigned>(batch), static_cast<unsigned>(heads));
  const std::size_t shared = chunk_columns * ((head_dim + width - 1) / width * width) * sizeof(float);
  for (std::int64_t first = 0; first < columns; first += chunk_columns) {
    column_chunk chunk;
    chunk.first = static_cast<int>(first);
    chunk.count = static_cast<int>(std::min<std::int64_t>(chunk_columns, columns - first));
    for (int j = 0; j < chunk.count; ++j) {
      chunk.position[j] = layout.text_begin() + in.columns[first + j];
      chunk.weight[j] = in.weights[first + j];
    }
    kernel<<<grid, block_threads, shared, stream>>>(in.q, in.k, in.lse, chunk, layout.image_begin(),
                                                    image_tokens, in.scale, first == 0, partial,
                                                    probabilities);
    if (const cudaError_t status = cudaGetLastError(); status != cudaSuccess) return status;
  }
  head_mean_kernel<<<blocks_for(batch * image_tokens, row_block_threads), row_block_threads, 0,
                     stream>>>(partial, heads, in.block_weight, relevance);
  return cudaGetLastError();
}

}  // namespace star::cuda
