#pragma once
/// @file
/// @brief The tensor type of the Eigen CPU backend: a shape and a contiguous row-major
/// Eigen array of `float` or `double`.

#include <Eigen/Core>

#include "star/core/shape.hpp"

namespace star::eigen {

/// @brief A dense row-major tensor stored in one Eigen column array.
/// @tparam Scalar  `float` or `double`.
template <class Scalar>
struct tensor {
  star::shape dims;                                ///< extents, outermost first
  Eigen::Array<Scalar, Eigen::Dynamic, 1> values;  ///< row-major, `numel(dims)` entries
};

}  // namespace star::eigen
