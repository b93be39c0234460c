#pragma once
// Seeded random inputs. Every generator takes the seed explicitly; tests print it with
// INFO so a failure names the input that produced it.

#include <cstdint>
#include <random>
#include <vector>

namespace star::test {

/// `count` values uniform in [lo, hi).
inline std::vector<double> uniform(std::size_t count, std::uint64_t seed, double lo = -1.0,
                                   double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> out(count);
  for (double& x : out) x = dist(rng);
  return out;
}

/// `count` standard normal values.
inline std::vector<double> normal(std::size_t count, std::uint64_t seed, double mean = 0.0,
                                  double stddev = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(mean, stddev);
  std::vector<double> out(count);
  for (double& x : out) x = dist(rng);
  return out;
}

}  // namespace star::test
