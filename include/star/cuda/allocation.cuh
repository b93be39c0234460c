#pragma once
/// @file
/// @brief Fused allocation (docs/math.md §4, steps 1-4), one CUDA block per row: sharpen,
/// normalise, entropy, `lambda`, `W = N q`, and the exact water-filling cap, with the
/// semantics of `star::allocate` (allocation/allocate.hpp, allocation/water_filling.hpp).

#include <cfloat>
#include <cstddef>
#include <cstdint>

#include "star/core/strided_view.hpp"
#include "star/cuda/api.cuh"
#include "star/cuda/common.cuh"
#include "star/core/kernel_limits.hpp"

namespace star::cuda {

namespace allocation_detail {

/// @brief One row per CUDA block; dynamic shared memory `N` floats + `N` bytes.
template <class T>
__global__ void allocate_rows_kernel(strided_view<const T, 2> relevance, allocation_params params,
                                     allocation_outputs out) {
  extern __shared__ float row[];  // [N] the relevance, then W before the cap
  __shared__ float float_scratch[32];
  __shared__ double double_scratch[32];
  __shared__ int int_scratch[32];
  const std::int64_t image_tokens = relevance.extents[1];
  auto* held = reinterpret_cast<unsigned char*>(row + image_tokens);  // [N] 1 where capped
  const int b = blockIdx.x;
  const float n_float = static_cast<float>(image_tokens);

  const float given_lambda = params.lambda ? params.lambda[b] : 0.0f;
  int invalid = threadIdx.x == 0 && !(given_lambda >= 0.0f && given_lambda <= 1.0f);
  float local_max = 0.0f;
  for (std::int64_t i = threadIdx.x; i < image_tokens; i += blockDim.x) {
    const float x = to_float(relevance(b, i));
    invalid += !(x >= 0.0f && x <= FLT_MAX);
    local_max = fmaxf(local_max, x);
    row[i] = x;
  }
  if (block_sum(invalid, int_scratch) > 0) {
    for (std::int64_t i = threadIdx.x; i < image_tokens; i += blockDim.x) out.weights(b, i) = NAN;
    if (threadIdx.x == 0) out.lambda[b] = out.entropy[b] = NAN, out.capped[b] = -1;
    return;
  }
  const float row_max = block_max(local_max, float_scratch);
  const bool zero_row = !(row_max > 0.0f);
  const bool sharpen = params.tau != 1.0f;
  float local_mass = 0.0f;
  for (std::int64_t i = threadIdx.x; i < image_tokens; i += blockDim.x) {
    const float scaled = zero_row ? 0.0f : row[i] / row_max;
    row[i] = sharpen ? powf(scaled, 1.0f / params.tau) : scaled;
    local_mass += row[i];
  }
  const float mass = block_sum(local_mass, float_scratch);
  float local_entropy = 0.0f;
  for (std::int64_t i = threadIdx.x; i < image_tokens; i += blockDim.x) {
    row[i] = zero_row ? 1.0f / n_float : row[i] / mass;  // m
    local_entropy -= row[i] * logf(fmaxf(row[i], 1e-30f));
  }
  const float entropy = block_sum(local_entropy, float_scratch);
  const float entropy_lambda =
      image_tokens == 1 ? 1.0f : fminf(fmaxf(entropy / logf(n_float), 0.0f), 1.0f);
  const float lambda = params.lambda ? given_lambda : entropy_lambda;
  for (std::int64_t i = threadIdx.x; i < image_tokens; i += blockDim.x) {
    row[i] = (1.0f - lambda) * n_float * row[i] + lambda;  // W before the cap
    held[i] = 0;
  }
  __syncthreads();

  // Water-filling (water_fill): W = min(w_max, c W0), the capped set growing until stable.
  const bool cap = params.w_max >= 1.0f;
  int held_count = 0;
  float scale = 1.0f, even_share = 0.0f;
  while (cap) {
    double local_free = 0.0;
    for (std::int64_t i = threadIdx.x; i < image_tokens; i += blockDim.x)
      if (!held[i]) local_free += row[i];
    const double free_mass = block_sum(local_free, double_scratch);
    const double budget = fmax(static_cast<double>(image_tokens) -
                                   static_cast<double>(params.w_max) * held_count, 0.0);
    const bool starved = !(free_mass > budget * 1e-30);
    scale = starved ? 0.0f : static_cast<float>(budget / free_mass);
    even_share = starved ? static_cast<float>(budget / fmax(double(image_tokens - held_count), 1.0))
                         : 0.0f;
    int local_grown = 0;
    for (std::int64_t i = threadIdx.x; i < image_tokens; i += blockDim.x)
      local_grown += held[i] || row[i] * scale + even_share > params.w_max;
    const int grown = block_sum(local_grown, int_scratch);
    if (grown == held_count) break;
    for (std::int64_t i = threadIdx.x; i < image_tokens; i += blockDim.x)
      held[i] = held[i] || row[i] * scale + even_share > params.w_max;
    held_count = grown;
    __syncthreads();
  }
  for (std::int64_t i = threadIdx.x; i < image_tokens; i += blockDim.x)
    out.weights(b, i) = held[i] ? params.w_max : row[i] * scale + even_share;
  if (threadIdx.x == 0) {
    out.lambda[b] = lambda;
    out.entropy[b] = entropy;
    out.capped[b] = held_count;
  }
}

}  // namespace allocation_detail

// Documented at its declaration in star/cuda/api.cuh.
template <class T>
  requires is_kernel_element<T>
cudaError_t allocate_rows(strided_view<const T, 2> relevance, const allocation_params& params,
                          const allocation_outputs& out, cudaStream_t stream) {
  const auto [rows, image_tokens] = relevance.extents;
  if (rows < 1 || rows > max_grid_x || image_tokens < 1 || image_tokens > max_allocation_tokens ||
      out.weights.extents != relevance.extents || !out.lambda || !out.entropy || !out.capped ||
      !(params.tau > 0.0f && params.tau <= FLT_MAX) ||
      !(params.w_max == 0.0f || (params.w_max >= 1.0f && params.w_max <= FLT_MAX)))
    return cudaErrorInvalidValue;
  const std::size_t shared = static_cast<std::size_t>(image_tokens) * (sizeof(float) + 1);
  allocation_detail::allocate_rows_kernel<T>
      <<<static_cast<unsigned>(rows), row_block_threads, shared, stream>>>(relevance, params, out);
  return cudaGetLastError();
}

}  // namespace star::cuda
