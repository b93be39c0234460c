#pragma once
/// @file
/// @brief Synchronisation and the CUDA caching allocator's byte counters of one device. The
/// counters need STAR_STEP_BENCH_CUDA (a LibTorch with CUDA); on the CPU or without it they are
/// absent.

#include <c10/core/Device.h>
#include <torch/cuda.h>

#ifdef STAR_STEP_BENCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <cstdint>
#include <optional>
#include <string>

namespace star::step_bench {

/// @brief Synchronisation and allocator counters of `device`.
class device_probe {
 public:
  /// @param device  the device probed: a CUDA device's queue and allocator, or the CPU (no
  ///                 queue, no counters)
  explicit device_probe(at::Device device) : device_(device) {}

  /// @brief Waits for the device's queued work (a no-op on the CPU).
  void synchronize() const {
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  }
  /// @brief Starts a new peak for `peak_bytes`.
  void reset_peak() const {
#ifdef STAR_STEP_BENCH_CUDA
    if (device_.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device_.index());
#endif
  }
  /// @brief Peak allocated bytes since `reset_peak`; nullopt without counters.
  std::optional<std::int64_t> peak_bytes() const { return allocated(true); }
  /// @brief Allocated bytes now; nullopt without counters.
  std::optional<std::int64_t> current_bytes() const { return allocated(false); }

  /// @brief The CUDA device's product name, else the device string (`cpu`).
  std::string name() const {
#ifdef STAR_STEP_BENCH_CUDA
    if (device_.is_cuda()) return at::cuda::getDeviceProperties(device_.index())->name;
#endif
    return device_.str();
  }

 private:
  std::optional<std::int64_t> allocated([[maybe_unused]] bool peak) const {
#ifdef STAR_STEP_BENCH_CUDA
    if (device_.is_cuda()) {
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
      const auto& all_pools = stats.allocated_bytes[0];  // index 0: StatType::AGGREGATE
      return peak ? all_pools.peak : all_pools.current;
    }
#endif
    return std::nullopt;
  }

  at::Device device_;
};

}  // namespace star::step_bench
