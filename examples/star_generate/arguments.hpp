#pragma once
/// @file
/// @brief The command line of star-generate: its usage text, the parsed arguments and their
/// checks (numbers parsed whole and range checked, the device, the output folder).

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "command_line/parse.hpp"

namespace star::generate_cli {

using command_line::usage_error;

/// @brief Printed for `--help` (to stdout) and after every usage error (to stderr).
inline constexpr const char* usage =
    "usage: star-generate --model DIR --prompt TEXT [--prompt TEXT ...] [--steps N] [--size PX]\n"
    "                     [--seed S] [--guidance G] [--words w1,w2]\n"
    "                     [--dtype float32|bfloat16|float16] [--device cpu|cuda|cuda:N]\n"
    "                     --out DIR\n"
    "       star-generate --help\n";

/// @brief The parsed command line, with the documented defaults.
struct arguments {
  bool help = false;                  ///< `--help` or `-h`: print the usage, nothing else
  std::filesystem::path model;        ///< `--model`, a diffusers SD3 / SD3.5 folder
  std::filesystem::path out;          ///< `--out`, created when absent
  std::vector<std::string> prompts;   ///< every `--prompt`, one image each
  std::vector<std::string> words;     ///< `--words`; empty: the content words of each prompt
  std::int64_t size = 512;            ///< `--size`, image side in pixels (checked by the model)
  int steps = 28;                     ///< `--steps`, in [1, max_steps]
  std::uint64_t seed = 0;             ///< `--seed`
  double guidance = 4.5;              ///< `--guidance`, finite and >= 0
  at::ScalarType dtype = at::kFloat;  ///< `--dtype`
  at::Device device = at::kCPU;       ///< `--device`
};

/// @brief The most sampling steps `--steps` takes.
inline constexpr int max_steps = 1000;

/// @brief Parses `argv[1..argc)`; at a `--help` (or `-h`) flag it stops, returning only `help`
/// set. Otherwise requires `--model` (an existing folder), `--out` (a folder that exists
/// writable or can be created) and a `--prompt`.
/// @throws usage_error naming the option on an unknown flag, a missing or invalid value
arguments parse_arguments(int argc, char** argv);

}  // namespace star::generate_cli
