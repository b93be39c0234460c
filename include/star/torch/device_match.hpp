#pragma once
/// @file
/// @brief Comparing a tensor's device with the device an operation expects.

#include <c10/core/Device.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

namespace star::libtorch {

/// @brief Whether a tensor on `actual` is on `expected`, where `current` is the index a device
/// given without one stands for (e.g. `at::kCUDA`: the current CUDA device, where ATen puts
/// the tensors it makes with it). A tensor on an unindexed device (the CPU) matches any index.
inline bool device_matches(c10::Device actual, c10::Device expected, c10::DeviceIndex current) {
  if (actual.type() != expected.type()) return false;
  if (!actual.has_index()) return true;
  return actual.index() == (expected.has_index() ? expected.index() : current);
}

/// @brief Whether a tensor on `actual` is on `expected`; an `expected` without an index
/// (`at::kCUDA`) is the current device of its type.
inline bool device_matches(c10::Device actual, c10::Device expected) {
  const bool current_needed =
      actual.type() == expected.type() && actual.has_index() && !expected.has_index();
  return device_matches(actual, expected,
                        current_needed
                            ? c10::impl::getDeviceGuardImpl(expected.type())->getDevice().index()
                            : c10::DeviceIndex{-1});
}

}  // namespace star::libtorch
