#pragma once
/// @file
/// @brief star's core plus the Eigen CPU backend `star::eigen::backend<Scalar>` (link
/// `star::eigen`).

#include "star/eigen/backend.hpp"
#include "star/star.hpp"
