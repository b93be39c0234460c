// star-bench: measures the memory bandwidth of this machine, then runs every benchmark.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "bandwidth.hpp"

namespace star::bench {

double& measured_bandwidth() {
  static double bytes_per_second = 0.0;
  return bytes_per_second;
}

namespace {

/// Best of several passes of a 512 MiB copy split over the OpenMP threads.
double measure_copy_bandwidth() {
  const std::size_t count = std::size_t{1} << 26;  // 64 Mi doubles = 512 MiB
  std::vector<double> source(count, 1.0), target(count, 0.0);
  double best = 0.0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto start = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(count); ++i) target[i] = source[i];
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * sizeof(double) * count / seconds);
    benchmark::DoNotOptimize(target.data());
  }
  return best;
}

}  // namespace
}  // namespace star::bench

int main(int argc, char** argv) {
  star::bench::measured_bandwidth() = star::bench::measure_copy_bandwidth();
  std::printf("memory bandwidth (512 MiB copy, read + write): %.2f GB/s\n",
              star::bench::measured_bandwidth() / 1e9);
  benchmark::AddCustomContext("memory_bandwidth_GBps",
                              std::to_string(star::bench::measured_bandwidth() / 1e9));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
