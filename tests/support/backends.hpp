#pragma once
// The backends every operator test runs over (one test body, TEMPLATE_LIST_TEST_CASE), each
// with the tolerance its precision allows against the reference backend.

#include <tuple>

#include "star/backends/reference.hpp"

namespace star::test {

/// Absolute/relative tolerance of backend B against the reference (double) backend.
template <class B>
struct tolerance {
  static constexpr double value = 1e-12;
};

using all_backends = std::tuple<star::reference_backend>;

}  // namespace star::test
