// The fused kernels for the host-compiled benchmark (star/torch/cuda_ops.hpp).
#include "star/cuda/instantiate.cuh"
