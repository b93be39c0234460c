#pragma once
/// @file
/// @brief What the example programs' command lines share: the usage error (exit status 2), a
/// walk over `argv` that names a flag whose value is missing, and strict parsers of numbers and
/// devices whose errors name the option and the accepted range.

#include <c10/core/Device.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

namespace star::command_line {

/// @brief A missing, unknown or out-of-range command-line argument; its message names the
/// option. The programs print it with their usage and exit with status 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// @brief `argv[1..argc)`, one argument at a time.
class argument_reader {
 public:
  /// @param argc  `main`'s argument count
  /// @param argv  `main`'s arguments; `argv[0]` (the program) is skipped
  argument_reader(int argc, char** argv) : argc_(argc), argv_(argv) {}

  /// @brief Whether every argument was read.
  bool done() const { return next_ >= argc_; }
  /// @brief The next argument (a flag, or a positional one); requires `!done()`.
  std::string next() { return argv_[next_++]; }
  /// @brief The value after `flag`.
  /// @param flag  the flag just read, named by the error
  /// @throws usage_error "FLAG: missing value" when `flag` was the last argument
  std::string value_of(std::string_view flag);

 private:
  int argc_;
  char** argv_;
  int next_ = 1;
};

/// @brief `text` as a whole decimal integer in [min, max] (no sign other than a leading '-',
/// no spaces, no trailing characters).
/// @param option  named by the error, e.g. `--steps`
/// @param text    the option's value as given
/// @param min     the smallest value accepted
/// @param max     the largest value accepted (none by default)
/// @throws usage_error naming `option`, the range and `text` otherwise
std::int64_t parse_integer(std::string_view option, std::string_view text, std::int64_t min,
                           std::int64_t max = std::numeric_limits<std::int64_t>::max());

/// @brief `text` as a whole finite decimal number in [min, max] (`4.5`, `1e-3`; no `inf`,
/// `nan`, spaces or trailing characters).
/// @param option  named by the error, e.g. `--guidance`
/// @param text    the option's value as given
/// @param min     the smallest value accepted
/// @param max     the largest value accepted (none by default)
/// @throws usage_error naming `option`, the range and `text` otherwise
double parse_real(std::string_view option, std::string_view text, double min,
                  double max = std::numeric_limits<double>::max());

/// @brief `cpu`, `cuda` (CUDA device 0) or `cuda:N`, the CUDA ones only where this LibTorch has
/// that device.
/// @param option  named by the error, e.g. `--device`
/// @param text    the option's value as given
/// @throws usage_error naming `option` and `text` for another spelling, a missing CUDA device
c10::Device parse_device(std::string_view option, std::string_view text);

}  // namespace star::command_line
