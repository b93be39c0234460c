// The fused kernels for the host-compiled LibTorch wrappers (star/torch/cuda_ops.hpp).
#include "star/cuda/instantiate.cuh"
