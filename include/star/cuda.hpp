#pragma once
/// @file
/// @brief The fused CUDA kernels of star (component `star::cuda`): relevance read-out,
/// allocation, token-mode objective forward and backward. They need nvcc: included by a
/// host-only compiler this header provides nothing, so umbrella includes stay harmless.

#if defined(__CUDACC__)
#include "star/cuda/allocation.cuh"
#include "star/cuda/attention_readout.cuh"
#include "star/cuda/token_objective.cuh"
#endif
