#pragma once
// Where this LibTorch can run float16 modules: CUDA, and the CPU from LibTorch 2 on (LibTorch
// 1.13's CPU kernels lack float16 matmul and LayerNorm).

#include <c10/core/Device.h>
#include <torch/version.h>

namespace star::test {

/// Whether this LibTorch has the float16 kernels (matmul, LayerNorm, ...) the SD3.5 modules
/// need on `device`.
inline bool has_float16_kernels(const c10::Device& device) {
  return device.is_cuda() || TORCH_VERSION_MAJOR >= 2;
}

}  // namespace star::test
