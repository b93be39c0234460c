#include "arguments.hpp"

#include <torch/cuda.h>

#include "command_line/output_path.hpp"

namespace star::step_bench {
namespace {

at::ScalarType parse_dtype(const std::string& text) {
  if (text == "bf16") return at::kBFloat16;
  if (text == "f32") return at::kFloat;
  if (text == "f16") return at::kHalf;
  throw usage_error("--dtype: expected bf16, f32 or f16, got '" + text + "'");
}

}  // namespace

arguments parse_arguments(int argc, char** argv) {
  using command_line::parse_integer;
  arguments args;
  if (torch::cuda::is_available()) args.device = at::Device(at::kCUDA, 0);
  command_line::argument_reader reader(argc, argv);
  while (!reader.done()) {
    const std::string name = reader.next();
    if (name == "--config") {
      args.config = reader.value_of(name);
      if (args.config != "medium" && args.config != "tiny")
        throw usage_error("--config: expected medium or tiny, got '" + args.config + "'");
    } else if (name == "--resolution") {
      args.resolution = parse_integer(name, reader.value_of(name), 1);
    } else if (name == "--batch") {
      args.batch = parse_integer(name, reader.value_of(name), 1);
    } else if (name == "--dtype") {
      args.dtype_name = reader.value_of(name);
      args.dtype = parse_dtype(args.dtype_name);
    } else if (name == "--device") {
      args.device = command_line::parse_device(name, reader.value_of(name));
    } else if (name == "--repeats") {
      args.repeats = parse_integer(name, reader.value_of(name), 1);
    } else if (name == "--warmup") {
      args.warmup = parse_integer(name, reader.value_of(name), 0);
    } else if (!name.starts_with("-") && !args.out) {
      args.out = name;
    } else {
      throw usage_error(name + ": unknown argument");
    }
  }
  if (args.out) command_line::require_writable_file("OUT.json", *args.out);
  return args;
}

}  // namespace star::step_bench
