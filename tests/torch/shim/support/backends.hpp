#pragma once
// Stand-in for tests/support/backends.hpp when the operator tests of tests/unit are compiled
// into star_torch_tests (tests/torch/CMakeLists.txt puts this folder first on the include
// path): the same test bodies then run over the LibTorch backend on the CPU, float32 and
// float64, instead of the host backends.

#include <tuple>

#include "star/backends/reference.hpp"  // what tests/support/backends.hpp brings in
#include "star/torch/backend.hpp"
#include "support/odd_backend.hpp"

#if STAR_TEST_WITH_EIGEN
#include "star/eigen/backend.hpp"  // the Eigen-only cases of test_backend_conformance.cpp
#endif

namespace star::test {

/// The LibTorch backend computing in float64 on the CPU (a distinct type for the test lists).
struct libtorch_double : star::libtorch::backend {
  libtorch_double() : star::libtorch::backend(at::kCPU, at::kDouble) {}
};

/// Tolerance of backend B against the reference (double) backend, for
/// `require_close`'s |got - want| <= tol * (1 + |want|).
template <class B>
struct tolerance {
  static constexpr double value = 1e-12;
};

/// LibTorch float32 on the CPU: the same bound as Eigen float (tests/support/backends.hpp);
/// the operator tests were written to it, and ATen's float kernels stay inside it.
template <>
struct tolerance<star::libtorch::backend> {
  static constexpr double value = 2e-5;
};

/// LibTorch float64: only summation order and vectorised exp/log differ from the reference.
template <>
struct tolerance<libtorch_double> {
  static constexpr double value = 1e-10;
};

using all_backends = std::tuple<star::libtorch::backend, libtorch_double>;

}  // namespace star::test
