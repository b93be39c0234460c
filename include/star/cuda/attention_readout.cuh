#pragma once
/// @file
/// @brief Fused relevance read-out (star-method.md §3): for the selected text columns `S`,
/// `R[b, n] += block_weight * sum_j w_j * mean_h exp(s q_n . k_j - LSE[b, h, n])` in one pass
/// over `q`, never forming the `N x T` scores; optionally also the probabilities themselves.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "star/core/strided_view.hpp"
#include "star/core/token_layout.hpp"
#include "star/cuda/api.cuh"
#include "star/cuda/common.cuh"

namespace star::cuda {

namespace readout_detail {

/// @brief Columns handled by one launch (their partial dot products live in registers).
inline constexpr int chunk_columns = 16;
/// @brief Threads that share one image row: each takes every 8th element of `D`, so that
/// neighbouring threads read neighbouring elements of the row (coalesced for `D`-contiguous q).
inline constexpr int threads_per_row = 8;
/// @brief Image rows per CUDA block.
inline constexpr int rows_per_block = 32;
/// @brief Threads per CUDA block.
inline constexpr int block_threads = threads_per_row * rows_per_block;
/// @brief Elements of `q` each thread loads before using them (`D = 64`: the whole row at once).
inline constexpr int loads_in_flight = 8;

/// @brief Up to `chunk_columns` selected columns, passed by value as a kernel parameter.
struct column_chunk {
  int count = 0;                            ///< columns used, <= chunk_columns
  int first = 0;                            ///< index in `S` of the first one
  std::int64_t position[chunk_columns]{};   ///< joint-sequence positions of the keys
  float weight[chunk_columns]{};            ///< `w_j`
};

/// @brief Per (head, batch, image row), the weighted sum over the chunk's columns of the
/// probabilities, added to `partial[h][b][n]` (written on the first chunk). Grid
/// `(ceil(N / rows_per_block), B, H)` of `block_threads`; dynamic shared memory:
/// `chunk_columns * D` floats.
template <class T>
__global__ void selected_columns_kernel(strided_view<const T, 4> q, strided_view<const T, 4> k,
                                        strided_view<const float, 3> lse, column_chunk chunk,
                                        std::int64_t image_begin, float scale, bool first_chunk,
                                        float* partial, strided_view<float, 4> probabilities) {
  extern __shared__ float keys[];  // [chunk_columns, D]
  const std::int64_t batch = q.extents[0], head_dim = q.extents[3], image_tokens = lse.extents[2];
  const int b = blockIdx.y, h = blockIdx.z;
  const int dim = static_cast<int>(head_dim);  // <= 768: 32-bit index arithmetic suffices
  for (int i = static_cast<int>(threadIdx.x); i < chunk_columns * dim;
       i += static_cast<int>(blockDim.x)) {
    const int j = i / dim, d = i - j * dim;
    keys[i] = j < chunk.count ? to_float(k(b, h, chunk.position[j], d)) : 0.0f;
  }
  __syncthreads();
  const int lane = static_cast<int>(threadIdx.x) % threads_per_row;
  const std::int64_t n = static_cast<std::int64_t>(blockIdx.x) * rows_per_block +
                         static_cast<std::int64_t>(threadIdx.x) / threads_per_row;
  float dot[chunk_columns] = {};
  if (n < image_tokens) {
    const T* row = &q(b, h, image_begin + n, 0);
    // loads_in_flight elements of the row are loaded before they are used, so that each
    // thread keeps that many loads in flight (the kernel is bound by memory latency otherwise)
    for (int base = lane; base < dim; base += threads_per_row * loads_in_flight) {
      float qd[loads_in_flight];
#pragma unroll
      for (int e = 0; e < loads_in_flight; ++e) {
        const int d = base + e * threads_per_row;
        qd[e] = d < dim ? to_float(row[d * q.strides[3]]) : 0.0f;
      }
#pragma unroll
      for (int e = 0; e < loads_in_flight; ++e) {
        const int d = std::min(base + e * threads_per_row, dim - 1);  // qd[e] = 0 past the row
#pragma unroll
        for (int j = 0; j < chunk_columns; ++j) dot[j] += qd[e] * keys[j * dim + d];
      }
    }
  }
  // the row's threads are adjacent lanes of one warp: every lane takes part in the shuffles
#pragma unroll
  for (int j = 0; j < chunk_columns; ++j)
#pragma unroll
    for (int offset = threads_per_row / 2; offset > 0; offset /= 2)
      dot[j] += __shfl_xor_sync(0xffffffffu, dot[j], offset);
  if (n >= image_tokens || lane != 0) return;
  const float row_lse = lse(b, h, n);
  float weighted = 0.0f;
#pragma unroll
  for (int j = 0; j < chunk_columns; ++j) {
    if (j >= chunk.count) break;
    const float p = __expf(scale * dot[j] - row_lse);
    if (probabilities.data) probabilities(b, h, n, chunk.first + j) = p;
    weighted += chunk.weight[j] * p;
  }
  float& slot = partial[(static_cast<std::int64_t>(h) * batch + b) * image_tokens + n];
  slot = first_chunk ? weighted : slot + weighted;
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
      in.lse.extents == std::array<std::int64_t, 3>{batch, heads, image_tokens} &&
      relevance.extents == std::array<std::int64_t, 2>{batch, image_tokens} &&
      (!probabilities.data ||
       probabilities.extents == std::array<std::int64_t, 4>{batch, heads, image_tokens, columns});
  const bool columns_valid =
      columns >= 1 && in.weights.size() == in.columns.size() &&
      std::all_of(in.columns.begin(), in.columns.end(),
                  [&](std::int64_t j) { return j >= 0 && j < layout.text_tokens(); });
  if (!shapes_agree || !columns_valid || batch < 1 || heads < 1 || image_tokens < 1 ||
      head_dim < 1 || head_dim > 768 || batch > 65535 || heads > 65535 || !(in.scale > 0.0f) ||
      workspace_bytes < relevance_workspace_bytes(batch, heads, image_tokens))
    return cudaErrorInvalidValue;

  float* partial = static_cast<float*>(workspace);
  const dim3 grid(blocks_for(image_tokens, rows_per_block), static_cast<unsigned>(batch),
                  static_cast<unsigned>(heads));
  const std::size_t shared = chunk_columns * head_dim * sizeof(float);
  for (std::int64_t first = 0; first < columns; first += chunk_columns) {
    column_chunk chunk;
    chunk.first = static_cast<int>(first);
    chunk.count = static_cast<int>(std::min<std::int64_t>(chunk_columns, columns - first));
    for (int j = 0; j < chunk.count; ++j) {
      chunk.position[j] = layout.text_begin() + in.columns[first + j];
      chunk.weight[j] = in.weights[first + j];
    }
    selected_columns_kernel<T><<<grid, block_threads, shared, stream>>>(
        in.q, in.k, in.lse, chunk, layout.image_begin(), in.scale, first == 0, partial,
        probabilities);
    if (const cudaError_t status = cudaGetLastError(); status != cudaSuccess) return status;
  }
  head_mean_kernel<<<blocks_for(batch * image_tokens, row_block_threads), row_block_threads, 0,
                     stream>>>(partial, heads, in.block_weight, relevance);
  return cudaGetLastError();
}

}  // namespace star::cuda
