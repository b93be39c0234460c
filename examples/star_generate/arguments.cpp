#include "arguments.hpp"

#include <climits>
#include <map>
#include <sstream>
#include <system_error>

#include "command_line/output_path.hpp"

namespace star::generate_cli {
namespace {

/// The comma-separated words of `list`, each trimmed of spaces and tabs; empty ones dropped.
std::vector<std::string> split_words(const std::string& list) {
  std::vector<std::string> words;
  std::stringstream in(list);
  for (std::string word; std::getline(in, word, ',');) {
    const auto first = word.find_first_not_of(" \t");
    const auto last = word.find_last_not_of(" \t");
    if (first != std::string::npos) words.push_back(word.substr(first, last - first + 1));
  }
  return words;
}

at::ScalarType parse_dtype(const std::string& name) {
  static const std::map<std::string, at::ScalarType> dtypes{
      {"float32", at::kFloat}, {"bfloat16", at::kBFloat16}, {"float16", at::kHalf}};
  const auto it = dtypes.find(name);
  if (it == dtypes.end())
    throw usage_error("--dtype: expected float32, bfloat16 or float16, got '" + name + "'");
  return it->second;
}

}  // namespace

arguments parse_arguments(int argc, char** argv) {
  using command_line::parse_integer;
  arguments args;
  command_line::argument_reader reader(argc, argv);
  while (!reader.done()) {
    const std::string flag = reader.next();
    if (flag == "--help" || flag == "-h") {
      arguments help;
      help.help = true;
      return help;
    } else if (flag == "--model") {
      args.model = reader.value_of(flag);
    } else if (flag == "--out") {
      args.out = reader.value_of(flag);
    } else if (flag == "--prompt") {
      args.prompts.push_back(reader.value_of(flag));
    } else if (flag == "--words") {
      args.words = split_words(reader.value_of(flag));
    } else if (flag == "--size") {
      args.size = parse_integer(flag, reader.value_of(flag), 1, INT_MAX);
    } else if (flag == "--steps") {
      args.steps = static_cast<int>(parse_integer(flag, reader.value_of(flag), 1, max_steps));
    } else if (flag == "--seed") {
      args.seed = static_cast<std::uint64_t>(parse_integer(flag, reader.value_of(flag), 0));
    } else if (flag == "--guidance") {
      args.guidance = command_line::parse_real(flag, reader.value_of(flag), 0.0);
    } else if (flag == "--dtype") {
      args.dtype = parse_dtype(reader.value_of(flag));
    } else if (flag == "--device") {
      args.device = command_line::parse_device(flag, reader.value_of(flag));
    } else {
      throw usage_error("unknown option '" + flag + "'");
    }
  }
  if (args.model.empty()) throw usage_error("--model is required");
  if (args.out.empty()) throw usage_error("--out is required");
  if (args.prompts.empty()) throw usage_error("at least one --prompt is required");
  std::error_code error;
  if (!std::filesystem::is_directory(args.model, error))
    throw usage_error("--model: '" + args.model.string() + "' is not a folder");
  command_line::require_writable_folder("--out", args.out);
  return args;
}

}  // namespace star::generate_cli
