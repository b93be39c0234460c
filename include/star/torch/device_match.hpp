#pragma once
/// @file
/// @brief Comparing a tensor's device with the device an operation expects.

#include <c10/core/Device.h>

namespace star::libtorch {

/// @brief Whether a tensor on `actual` is on `expected`. A device given without an index
/// (`at::kCUDA`, i.e. "the current CUDA device") matches every index of its type, because
/// LibTorch places such tensors on an indexed device (`cuda:0`).
inline bool device_matches(c10::Device actual, c10::Device expected) {
  return actual.type() == expected.type() &&
         (!expected.has_index() || !actual.has_index() || actual.index() == expected.index());
}

}  // namespace star::libtorch
