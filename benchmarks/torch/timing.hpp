#pragma once
// The one timing loop of star-torch-bench: the median wall time per call of repeated samples
// after a warm-up. A sample makes `calls_per_sample` calls back to back and then synchronises
// the device, so queued CUDA work is counted; with several calls per sample, a CUDA call costs
// what it adds to a busy stream (as inside a forward pass), without one sync's latency each.

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace star::bench {

/// A named call to time.
struct timed_call {
  std::string name;
  std::function<void()> run;
};

/// How many calls one measurement makes.
struct timing_plan {
  int warmup = 3;                ///< untimed calls first (allocator, kernel selection, caches)
  std::size_t min_repeats = 5;   ///< timed calls at least
  std::size_t max_repeats = 15;  ///< timed calls at most
  double budget_seconds = 2.0;   ///< no timed call past min_repeats once this much is spent
  int calls_per_sample = 1;      ///< calls between two synchronisations, timed together
};

/// Times calls on one device with one plan.
class timer {
 public:
  timer(at::Device device, timing_plan plan) : device_(device), plan_(plan) {}

  const timing_plan& plan() const { return plan_; }

  /// Median seconds per call of `f`.
  double median_seconds(const std::function<void()>& f) const {
    for (int i = 0; i < plan_.warmup; ++i) f();
    synchronize();
    std::vector<double> times;
    double spent = 0.0;
    while (times.size() < plan_.max_repeats &&
           (times.size() < plan_.min_repeats || spent < plan_.budget_seconds)) {
      const auto start = std::chrono::steady_clock::now();
      for (int call = 0; call < plan_.calls_per_sample; ++call) f();
      synchronize();
      const double sample =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      times.push_back(sample / plan_.calls_per_sample);
      spent += sample;
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }

 private:
  at::Device device_;
  timing_plan plan_;

  void synchronize() const {
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  }
};

}  // namespace star::bench
