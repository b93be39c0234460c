// Compile gate of the LibTorch CUDA wrappers: star/torch/cuda_ops.hpp, compiled against a
// LibTorch without CUDA, whose c10 CUDA headers the shim completes. Nothing links or runs.
#include "star/torch/cuda_ops.hpp"

static_assert(sizeof(star::libtorch::cuda_allocation_result) > 0,
              "cuda_ops.hpp compiled to nothing: the c10 CUDA headers were not found");
