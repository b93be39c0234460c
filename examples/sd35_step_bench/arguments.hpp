#pragma once
/// @file
/// @brief The command line of star-sd35-step-bench: its usage line and the parsed arguments;
/// a `usage_error` ends the run with exit status 2.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>

#include "command_line/parse.hpp"

namespace star::step_bench {

using command_line::usage_error;

/// @brief Printed after every usage error.
inline constexpr const char* usage =
    "usage: star-sd35-step-bench [--config medium|tiny] [--resolution 512] [--batch 1] "
    "[--dtype bf16|f32|f16] [--device cuda|cuda:N|cpu] [--repeats 5] [--warmup 1] [OUT.json]";

/// @brief The parsed command line, with the documented defaults.
struct arguments {
  std::string config = "medium";         ///< medium or tiny
  std::int64_t resolution = 512;         ///< image side in pixels (checked by `config_for`)
  std::int64_t batch = 1;                ///< images per step
  std::string dtype_name = "bf16";       ///< as given: bf16, f32 or f16
  at::ScalarType dtype = at::kBFloat16;  ///< the model's and the inputs' dtype
  at::Device device = at::kCPU;          ///< CUDA device 0 by default where one is available
  std::int64_t repeats = 5;              ///< measured steps per variant
  std::int64_t warmup = 1;               ///< unmeasured steps per variant
  std::optional<std::string> out;        ///< OUT.json, when given (its folder checked writable)
};

/// @brief Parses `argv[1..argc)` and checks that OUT.json, when given, can be written.
/// @throws usage_error naming the argument on an unknown flag, a missing or invalid value, an
///   OUT.json whose folder is missing or not writable
arguments parse_arguments(int argc, char** argv);

}  // namespace star::step_bench
