#pragma once
/// @file
/// @brief What the fused CUDA kernels share: element loads with float accumulation for
/// float / half / bfloat16, block-wide reductions, and workspace alignment.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "star/core/strided_view.hpp"
#include "star/cuda/api.cuh"

namespace star::cuda {

/// @brief Threads per block of the row-wise kernels (a multiple of 32, at most 1024).
inline constexpr int row_block_threads = 256;

/// @brief The value of an element, widened to float.
__device__ inline float to_float(float x) { return x; }
/// @brief The value of an element, widened to float.
__device__ inline float to_float(__half x) { return __half2float(x); }
/// @brief The value of an element, widened to float.
__device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

/// @brief `combine` of `value` over the block's threads (blockDim.x a multiple of 32, at most
/// 1024); every thread gets the result. `scratch` holds 32 values of `V` in shared memory;
/// `identity` is the neutral element of `combine`.
template <class V, class Combine>
__device__ V block_reduce(V value, V* scratch, V identity, Combine combine) {
  for (int offset = 16; offset > 0; offset /= 2)
    value = combine(value, __shfl_xor_sync(0xffffffffu, value, offset));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  V total = lane < warps ? scratch[lane] : identity;
  for (int offset = 16; offset > 0; offset /= 2)
    total = combine(total, __shfl_xor_sync(0xffffffffu, total, offset));
  return total;
}

/// @brief The sum of `value` over the block's threads; every thread gets the total.
template <class V>
__device__ V block_sum(V value, V* scratch) {
  return block_reduce(value, scratch, V(0), [](V a, V b) { return a + b; });
}

/// @brief The maximum of `value` over the block's threads; every thread gets it.
__device__ inline float block_max(float value, float* scratch) {
  return block_reduce(value, scratch, -INFINITY, [](float a, float b) { return fmaxf(a, b); });
}

/// @brief Blocks of `threads` threads covering `count` items.
constexpr unsigned blocks_for(std::int64_t count, int threads) {
  return static_cast<unsigned>((count + threads - 1) / threads);
}

}  // namespace star::cuda
