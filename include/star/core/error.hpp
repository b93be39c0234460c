#pragma once
/// @file
/// @brief The exceptions every host entry point of star throws on bad input.

#include <stdexcept>
#include <string>

namespace star {

/// @brief Base of every exception star throws. The message names the offending argument.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// @brief A tensor argument has the wrong rank or shape; the message prints the shapes.
class shape_error : public error {
 public:
  using error::error;
};

/// @brief An option is outside its documented range.
class option_error : public error {
 public:
  using error::error;
};

/// @brief A value is not usable: NaN or Inf where finite numbers are required, an empty
/// selection, a negative attention probability.
class value_error : public error {
 public:
  using error::error;
};

}  // namespace star
