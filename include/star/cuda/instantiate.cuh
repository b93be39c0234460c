#pragma once
/// @file
/// @brief Explicit instantiations of every launcher for float, `__half` and `__nv_bfloat16`.
/// Include this header in exactly one nvcc-compiled file of a program whose host-compiled
/// code calls the launchers through star/cuda/api.cuh (e.g. star/torch/cuda_ops.hpp).

#include "star/cuda.hpp"

/// @brief Instantiates every launcher for element type `T`.
#define STAR_CUDA_INSTANTIATE_LAUNCHERS(T)                                                      \
  template cudaError_t star::cuda::accumulate_relevance<T>(                                    \
      const star::cuda::readout_inputs<T>&, const star::token_layout&,                         \
      star::strided_view<float, 2>, star::strided_view<float, 4>, void*, std::size_t,          \
      cudaStream_t);                                                                           \
  template cudaError_t star::cuda::allocate_rows<T>(                                           \
      star::strided_view<const T, 2>, const star::cuda::allocation_params&,                    \
      const star::cuda::allocation_outputs&, cudaStream_t);                                    \
  template cudaError_t star::cuda::token_objective_forward<T>(                                 \
      const star::cuda::token_objective_inputs<T>&, const star::cuda::token_objective_params&, \
      star::cuda::token_objective_totals*, void*, std::size_t, cudaStream_t,                   \
      const star::cuda::token_objective_gradient&);                                            \
  template cudaError_t star::cuda::token_objective_backward<T>(                                \
      const star::cuda::token_objective_inputs<T>&, const star::cuda::token_objective_params&, \
      const star::cuda::token_objective_gradient&, cudaStream_t);

STAR_CUDA_INSTANTIATE_LAUNCHERS(float)
STAR_CUDA_INSTANTIATE_LAUNCHERS(__half)
STAR_CUDA_INSTANTIATE_LAUNCHERS(__nv_bfloat16)

#undef STAR_CUDA_INSTANTIATE_LAUNCHERS
