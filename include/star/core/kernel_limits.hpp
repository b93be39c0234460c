#pragma once
/// @file
/// @brief The extents the fused CUDA kernels' launchers accept (star/cuda/api.cuh). Plain C++
/// in the core (no CUDA headers, installed with every component), so that host-side checks
/// such as star/torch/cuda_op_checks.hpp reject exactly what a launcher would
/// (`cudaErrorInvalidValue`) where there is no CUDA.

#include <cstdint>

namespace star::cuda {

/// @brief The largest head dimension `D` the read-out takes (16 keys of `D` floats fill
/// 48 KiB of shared memory, the most a launch gets without opting in).
inline constexpr std::int64_t max_readout_head_dim = 768;

/// @brief The largest row length `N` the allocation kernel takes (the row lives in shared memory).
inline constexpr std::int64_t max_allocation_tokens = 4096;

/// @brief The largest y and z extents of a CUDA grid: the read-out's `B` and `H`.
inline constexpr std::int64_t max_grid_yz = 65535;

/// @brief The largest x extent of a CUDA grid, `2^31 - 1`: the rows `R` of the allocation and
/// the objective, one block each.
inline constexpr std::int64_t max_grid_x = 2147483647;

}  // namespace star::cuda
