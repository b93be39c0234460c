#include "arguments.hpp"

#include <torch/cuda.h>

#include <charconv>
#include <system_error>

namespace star::step_bench {
namespace {

std::int64_t parse_integer(const std::string& name, const std::string& text, std::int64_t min) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc{} || stop != end || value < min)
    throw usage_error(name + ": expected an integer >= " + std::to_string(min) + ", got '" +
                      text + "'");
  return value;
}

at::ScalarType parse_dtype(const std::string& text) {
  if (text == "bf16") return at::kBFloat16;
  if (text == "f32") return at::kFloat;
  if (text == "f16") return at::kHalf;
  throw usage_error("--dtype: expected bf16, f32 or f16, got '" + text + "'");
}

at::Device parse_device(const std::string& text) {
  if (text == "cpu") return at::kCPU;
  if (text != "cuda") throw usage_error("--device: expected cuda or cpu, got '" + text + "'");
  if (!torch::cuda::is_available())
    throw usage_error("--device cuda: no CUDA device (or LibTorch without CUDA)");
  return {at::kCUDA, 0};
}

}  // namespace

arguments parse_arguments(int argc, char** argv) {
  arguments args;
  if (torch::cuda::is_available()) args.device = at::Device(at::kCUDA, 0);
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw usage_error(name + ": missing value");
      return argv[++i];
    };
    if (name == "--config") {
      args.config = value();
      if (args.config != "medium" && args.config != "tiny")
        throw usage_error("--config: expected medium or tiny, got '" + args.config + "'");
    } else if (name == "--resolution") {
      args.resolution = parse_integer(name, value(), 1);
    } else if (name == "--batch") {
      args.batch = parse_integer(name, value(), 1);
    } else if (name == "--dtype") {
      args.dtype_name = value();
      args.dtype = parse_dtype(args.dtype_name);
    } else if (name == "--device") {
      args.device = parse_device(value());
    } else if (name == "--repeats") {
      args.repeats = parse_integer(name, value(), 1);
    } else if (name == "--warmup") {
      args.warmup = parse_integer(name, value(), 0);
    } else if (!name.starts_with("-") && !args.out) {
      args.out = name;
    } else {
      throw usage_error(name + ": unknown argument");
    }
  }
  return args;
}

}  // namespace star::step_bench
