#pragma once
/// @file
/// @brief Fused relevance read-out (docs/math.md §3): for the selected text columns `S`,
/// `R[b, n] += block_weight * sum_j w_j * mean_h exp(s q_n . k_j - LSE[b, h, n])` (or `=`, see
/// `readout_inputs::accumulate`; the LSE of image row `n`, at `image_begin + n` of the joint
/// sequence) in one pass over `q` per chunk of 16 columns, never forming the `N x T` scores;
/// optionally also the probabilities. float16 and bfloat16 run on tensor cores where the
/// device has them (star/cuda/readout_tensor_cores.cuh), everything else on CUDA cores
/// (star/cuda/readout_cuda_cores.cuh).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "star/core/strided_view.hpp"
#include "star/core/token_layout.hpp"
#include "star/cuda/api.cuh"
#include "star/cuda/readout_chunk.cuh"
#include "star/cuda/readout_cuda_cores.cuh"
#include "star/cuda/readout_tensor_cores.cuh"

namespace star::cuda {

namespace readout_detail {

/// @brief Queues the read-out of every chunk of 16 columns on `stream`: on tensor cores when
/// `tensor_cores` (16-bit `T` only), otherwise on CUDA cores through `partial`
/// (`relevance_workspace_bytes` of them). The arguments are checked by `accumulate_relevance`.
template <class T>
cudaError_t queue_readout(const readout_inputs<T>& in, const token_layout& layout,
                          strided_view<float, 2> relevance, strided_view<float, 4> probabilities,
                          float* partial, bool tensor_cores, cudaStream_t stream) {
  const std::int64_t image_tokens = layout.image_tokens(), columns = in.columns.size();
  const auto launch = [&](const column_chunk& chunk) {
    if constexpr (sizeof(T) == 2)
      if (tensor_cores)
        return tensor_core_readout(in, chunk, layout.image_begin(), image_tokens, relevance,
                                   probabilities, stream);
    return cuda_core_readout(in, chunk, layout.image_begin(), image_tokens, chunk.first == 0,
                             partial, probabilities, stream);
  };
  for (std::int64_t first = 0; first < columns; first += chunk_columns) {
    column_chunk chunk;
    chunk.first = static_cast<int>(first);
    chunk.count = static_cast<int>(std::min<std::int64_t>(chunk_columns, columns - first));
    for (int j = 0; j < chunk.count; ++j) {
      chunk.position[j] = layout.text_begin() + in.columns[first + j];
      chunk.weight[j] = in.weights[first + j];
    }
    if (const cudaError_t status = launch(chunk); status != cudaSuccess) return status;
  }
  return tensor_cores ? cudaSuccess
                      : store_head_mean(partial, in.q.extents[1], in.block_weight,
                                        in.accumulate, relevance, stream);
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

  const bool tensor_cores = readout_uses_tensor_cores<T>() && strides_non_negative(in.q) &&
                            strides_non_negative(in.k) && strides_non_negative(in.lse);
  return queue_readout(in, layout, relevance, probabilities, static_cast<float*>(workspace),
                       tensor_cores, stream);
}

}  // namespace star::cuda
