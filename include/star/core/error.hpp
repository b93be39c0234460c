#pragma once
/// @file
/// @brief The exceptions every host entry point of star throws on bad input.

#include <array>
#include <charconv>
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

namespace detail {

/// @brief `value` for an error message: the shortest text that reads back as the same double,
/// e.g. `0.04`, `1e-50`, `inf` (`std::to_string` prints 1e-50 as `0.000000`).
inline std::string printed(double value) {
  std::array<char, 32> text{};  // the longest double, -2.2250738585072014e-308, has 24
  const auto end = std::to_chars(text.data(), text.data() + text.size(), value).ptr;
  return std::string(text.data(), end);
}

}  // namespace detail

}  // namespace star
