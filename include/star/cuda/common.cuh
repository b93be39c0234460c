#pragma once
/// @file
/// @brief What the fused CUDA kernels share: element loads with float accumulation for
/// float / half / bfloat16, block-wide reductions, and grid sizes.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace star::cuda {

/// @brief Threads per block of the row-wise kernels (a multiple of 32, at most 1024).
inline constexpr int row_block_threads = 256;

/// @brief The value of an element, widened to float.
__device__ inline float to_float(float x) { return x; }
/// @brief The value of an element, widened to float.
__device__ inline float to_float(__half x) { return __half2float(x); }
/// @brief The value of an element, widened to float.
__device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

/// @brief `combine` of each of `values[0..K)` over the block's threads, the K reductions in
/// one pass (blockDim.x a multiple of 32, at most 1024); every thread gets the results in
/// `values`. `scratch` holds `32 * K` values of `V` in shared memory; `identity` is the
/// neutral element of `combine`.
template <int K, class V, class Combine>
__device__ void block_reduce(V (&values)[K], V* scratch, V identity, Combine combine) {
  for (int k = 0; k < K; ++k)
    for (int offset = 16; offset > 0; offset /= 2)
      values[k] = combine(values[k], __shfl_xor_sync(0xffffffffu, values[k], offset));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0)
    for (int k = 0; k < K; ++k) scratch[k * 32 + warp] = values[k];
  __syncthreads();
  for (int k = 0; k < K; ++k) {
    values[k] = lane < warps ? scratch[k * 32 + lane] : identity;
    for (int offset = 16; offset > 0; offset /= 2)
      values[k] = combine(values[k], __shfl_xor_sync(0xffffffffu, values[k], offset));
  }
}

/// @brief The sums of `values[0..K)` over the block's threads, in one pass (`scratch`: `32 * K`
/// values); every thread gets them.
template <int K, class V>
__device__ void block_sums(V (&values)[K], V* scratch) {
  block_reduce(values, scratch, V(0), [](V a, V b) { return a + b; });
}

/// @brief The sum of `value` over the block's threads (`scratch`: 32 values); every thread
/// gets the total.
template <class V>
__device__ V block_sum(V value, V* scratch) {
  V values[1] = {value};
  block_sums(values, scratch);
  return values[0];
}

/// @brief The maximum of `value` over the block's threads (`scratch`: 32 values); every thread
/// gets it.
__device__ inline float block_max(float value, float* scratch) {
  float values[1] = {value};
  block_reduce(values, scratch, -INFINITY, [](float a, float b) { return fmaxf(a, b); });
  return values[0];
}

/// @brief Blocks of `threads` threads covering `count` items.
constexpr unsigned blocks_for(std::int64_t count, int threads) {
  return static_cast<unsigned>((count + threads - 1) / threads);
}

}  // namespace star::cuda
