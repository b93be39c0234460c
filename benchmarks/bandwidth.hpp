#pragma once
// The memory-bandwidth limit every benchmark figure is compared against, measured once per
// run by main.cpp (a large multithreaded copy), and the counters that report a fraction of it.

#include <benchmark/benchmark.h>

namespace star::bench {

/// Bytes per second of a large copy on this machine, counting bytes read plus bytes written.
double& measured_bandwidth();

/// Reports `bytes` moved per iteration as bytes/s and as a fraction of the measured limit.
inline void report_bytes(benchmark::State& state, double bytes_per_iteration) {
  const double total = bytes_per_iteration * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(total));
  state.counters["bw_fraction"] =
      benchmark::Counter(total / measured_bandwidth(), benchmark::Counter::kIsRate);
}

}  // namespace star::bench
