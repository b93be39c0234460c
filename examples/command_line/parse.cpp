#include "command_line/parse.hpp"

#include <torch/cuda.h>

#include <charconv>
#include <cmath>
#include <system_error>

#include "star/core/error.hpp"

namespace star::command_line {
namespace {

/// "OPTION: expected WHAT, got 'TEXT'".
usage_error rejected(std::string_view option, const std::string& what, std::string_view text) {
  return usage_error(std::string(option) + ": expected " + what + ", got '" + std::string(text) +
                     "'");
}

}  // namespace

std::string argument_reader::value_of(std::string_view flag) {
  if (done()) throw usage_error(std::string(flag) + ": missing value");
  return next();
}

std::int64_t parse_integer(std::string_view option, std::string_view text, std::int64_t min,
                           std::int64_t max) {
  const std::string range = max == std::numeric_limits<std::int64_t>::max()
                                ? "an integer >= " + std::to_string(min)
                                : "an integer in [" + std::to_string(min) + ", " +
                                      std::to_string(max) + "]";
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc{} || stop != end || value < min || value > max)
    throw rejected(option, range, text);
  return value;
}

double parse_real(std::string_view option, std::string_view text, double min, double max) {
  const std::string range = max == std::numeric_limits<double>::max()
                                ? "a finite number >= " + star::detail::printed(min)
                                : "a number in [" + star::detail::printed(min) + ", " +
                                      star::detail::printed(max) + "]";
  double value = 0.0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc{} || stop != end || !std::isfinite(value) || value < min || value > max)
    throw rejected(option, range, text);
  return value;
}

c10::Device parse_device(std::string_view option, std::string_view text) {
  if (text == "cpu") return c10::kCPU;
  constexpr std::string_view cuda = "cuda";
  if (!text.starts_with(cuda) || (text.size() > cuda.size() && text[cuda.size()] != ':'))
    throw rejected(option, "cpu, cuda or cuda:N", text);
  if (!torch::cuda::is_available())
    throw usage_error(std::string(option) + " " + std::string(text) +
                      ": no CUDA device (or a LibTorch without CUDA)");
  if (text.size() == cuda.size()) return {c10::kCUDA, 0};
  const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
  try {
    const auto index = parse_integer(option, text.substr(cuda.size() + 1), 0, count - 1);
    return {c10::kCUDA, static_cast<c10::DeviceIndex>(index)};
  } catch (const usage_error&) {
    throw rejected(option, "cuda:N with N in [0, " + std::to_string(count - 1) + "]", text);
  }
}

}  // namespace star::command_line
