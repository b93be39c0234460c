#pragma once
// The backends every operator test runs over (one test body, TEMPLATE_LIST_TEST_CASE), each
// with the tolerance its precision allows against the reference backend.

#include <tuple>

#include "star/backends/reference.hpp"
#include "support/odd_backend.hpp"

#if STAR_TEST_WITH_EIGEN
#include "star/eigen/backend.hpp"
#endif

namespace star::test {

/// Tolerance of backend B against the reference (double) backend, for
/// `require_close`'s |got - want| <= tol * (1 + |want|).
template <class B>
struct tolerance {
  static constexpr double value = 1e-12;
};

#if STAR_TEST_WITH_EIGEN
/// Eigen double: same precision as the reference; only the summation order (vectorised, GEMM
/// blocking) and the vectorised exp/log/pow differ. Measured worst: 3e-14 (matmul, k = 1024).
template <>
struct tolerance<star::eigen::backend<double>> {
  static constexpr double value = 1e-10;
};

/// Eigen float, measured on double inputs (rounded to float on the way in): element-wise and
/// exp/log/pow <= 3e-7, sums of 1e3..6e4 terms <= 1.3e-6, softmax/logsumexp (also at ~1e3)
/// <= 7e-7, matmul with k = 1024 1.1e-5. 2e-5 covers these with margin for k up to ~1e3.
/// Not covered: differences of large float sums, e.g. exp(logp_new - logp_old) with log-probs
/// summed over 1024 elements (2e-4): such tests need their own bound.
template <>
struct tolerance<star::eigen::backend<float>> {
  static constexpr double value = 2e-5;
};

using all_backends = std::tuple<star::reference_backend, star::eigen::backend<double>,
                                star::eigen::backend<float>, odd_backend>;
#else
using all_backends = std::tuple<star::reference_backend, odd_backend>;
#endif

}  // namespace star::test
