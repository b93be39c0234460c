#include "sd35/lora/format.hpp"

#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "files/atomic_file.hpp"
#include "files/file_pair.hpp"
#include "sd35/safetensors/checkpoint.hpp"
#include "sd35/safetensors/load.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"

namespace star::sd35 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr std::string_view peft_key_prefix = "base_model.model.";
constexpr std::string_view diffusers_key_prefix = "transformer.";
constexpr std::string_view diffusers_config_prefix = "transformer.";
constexpr const char* diffusers_metadata_key = "lora_adapter_metadata";
constexpr std::string_view lora_a_suffix = ".lora_A.weight";
constexpr std::string_view lora_b_suffix = ".lora_B.weight";

std::string_view key_prefix(lora_format format) {
  return format == lora_format::peft ? peft_key_prefix : diffusers_key_prefix;
}

// ---------------------------------------------------------------------------------------------
// Saving

/// peft's LoraConfig fields of `options` (lora_alpha an integer when it is one, as peft types
/// it).
json lora_config(const lora_options& options) {
  json config = json::object();
  config["peft_type"] = "LORA";
  config["r"] = options.rank;
  if (std::floor(options.alpha) == options.alpha && std::abs(options.alpha) < 9.0e15)
    config["lora_alpha"] = static_cast<std::int64_t>(options.alpha);
  else
    config["lora_alpha"] = options.alpha;
  config["target_modules"] = options.target_modules;
  // peft knows "gaussian" and True (its kaiming-uniform default); `zeros` has no peft spelling
  // and is written as True: the saved weights replace any initialisation on load.
  if (options.init == lora_init::gaussian)
    config["init_lora_weights"] = "gaussian";
  else
    config["init_lora_weights"] = true;
  config["lora_dropout"] = 0.0;
  config["bias"] = "none";
  config["task_type"] = nullptr;
  return config;
}

/// peft's pair: `adapter_model.safetensors` and `adapter_config.json` in `folder`, written
/// together (`write_file_pair`: both new, or on failure both as they were).
void save_peft(const fs::path& folder,
               const std::vector<std::pair<std::string, at::Tensor>>& tensors,
               const json& config) {
  const auto text = config.dump(2) + "\n";
  try {
    files::write_file_pair(
        folder / peft_weights_name,
        [&tensors](const fs::path& path) { save_safetensors(path, tensors, {{"format", "pt"}}); },
        folder / peft_config_name,
        [&text](const fs::path& path) {
          files::write_text_atomically(path, text);
        });
  } catch (const files::file_write_error& e) {
    throw checkpoint_error("save_lora: " + std::string(e.what()));
  }
}

// ---------------------------------------------------------------------------------------------
// Loading

/// The files of a saved LoRA and their layout.
struct located_lora {
  lora_format format = lora_format::peft;
  fs::path weights;
};

lora_format format_of_keys(const checkpoint& ckpt) {
  if (ckpt.names().empty())
    throw checkpoint_error("load_lora " + ckpt.path().string() + ": the file holds no tensor");
  const auto& first = ckpt.names().front();
  if (first.starts_with(peft_key_prefix)) return lora_format::peft;
  if (first.starts_with(diffusers_key_prefix)) return lora_format::diffusers;
  throw checkpoint_error("load_lora " + ckpt.path().string() + ": key '" + first +
                         "' starts with neither 'base_model.model.' (peft) nor 'transformer.' "
                         "(diffusers)");
}

located_lora locate(const fs::path& path) {
  if (fs::is_directory(path)) {
    if (fs::exists(path / peft_weights_name)) return {lora_format::peft, path / peft_weights_name};
    if (fs::exists(path / diffusers_weights_name))
      return {lora_format::diffusers, path / diffusers_weights_name};
    throw checkpoint_error("load_lora " + path.string() + ": the folder holds neither " +
                           peft_weights_name + " (peft) nor " + diffusers_weights_name +
                           " (diffusers)");
  }
  if (!fs::exists(path)) throw checkpoint_error("load_lora " + path.string() + ": no such file");
  return {format_of_keys(checkpoint::open(path)), path};
}

/// The LoraConfig values a load needs; `targets` unset: the weights' module names.
struct lora_file_config {
  std::int64_t rank = 1;
  double alpha = 1.0;
  std::optional<std::vector<std::string>> targets;
  lora_init init = lora_init::kaiming_uniform;
};

/// Reads the LoraConfig fields named `prefix + field` from `config` (peft's adapter_config.json
/// with an empty prefix, diffusers' metadata with "transformer.").
lora_file_config parse_config(const json& config, const std::string& prefix,
                              const std::string& source) {
  const auto fail = [&](const std::string& field, const std::string& what) -> void {
    throw checkpoint_error("load_lora " + source + ": config key '" + prefix + field + "' " +
                           what);
  };
  const auto find = [&](const std::string& field) -> const json* {
    const auto found = config.find(prefix + field);
    return found == config.end() || found->is_null() ? nullptr : &*found;
  };
  if (!config.is_object())
    throw checkpoint_error("load_lora " + source + ": config is not an object");
  lora_file_config out;
  if (const auto* type = find("peft_type"); type && (!type->is_string() || *type != "LORA"))
    fail("peft_type", "must be \"LORA\", got " + type->dump());
  const auto* rank = find("r");
  if (!rank || !rank->is_number_integer() || rank->get<std::int64_t>() < 1)
    fail("r", "must be an integer >= 1, got " + (rank ? rank->dump() : std::string("nothing")));
  out.rank = rank->get<std::int64_t>();
  const auto* alpha = find("lora_alpha");
  if (!alpha || !alpha->is_number() || !(alpha->get<double>() > 0.0) ||
      !std::isfinite(alpha->get<double>()))
    fail("lora_alpha",
         "must be a number > 0, got " + (alpha ? alpha->dump() : std::string("nothing")));
  out.alpha = alpha->get<double>();
  // A list of suffixes; peft's regex-string form is not matched here: the file's names are used.
  if (const auto* targets = find("target_modules"); targets && targets->is_array()) {
    std::vector<std::string> list;
    for (const auto& target : *targets) {
      if (!target.is_string()) fail("target_modules", "must hold strings, got " + target.dump());
      list.push_back(target.get<std::string>());
    }
    out.targets = std::move(list);
  }
  if (const auto* init = find("init_lora_weights");
      init && init->is_string() && *init == "gaussian")
    out.init = lora_init::gaussian;
  if (const auto* dora = find("use_dora"); dora && dora->is_boolean() && dora->get<bool>())
    fail("use_dora", "is true: DoRA is not supported");
  for (const char* pattern : {"rank_pattern", "alpha_pattern"})
    if (const auto* found = find(pattern); found && !found->empty())
      fail(pattern, "is not empty: one rank and alpha for every module is supported");
  return out;
}

json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw checkpoint_error("load_lora " + path.string() + ": cannot open the file");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw checkpoint_error("load_lora " + path.string() + ": bad JSON: " + e.what());
  }
}

/// The config of `located`: adapter_config.json for peft, the metadata for diffusers (nothing
/// when the file has none).
std::optional<lora_file_config> read_config(const located_lora& located, const checkpoint& ckpt) {
  if (located.format == lora_format::peft) {
    const auto path = located.weights.parent_path() / peft_config_name;
    if (!fs::exists(path))
      throw checkpoint_error("load_lora " + located.weights.string() + ": no " + peft_config_name +
                             " beside the peft weights");
    return parse_config(read_json_file(path), "", path.string());
  }
  const auto found = ckpt.metadata().find(diffusers_metadata_key);
  if (found == ckpt.metadata().end()) return std::nullopt;
  json metadata;
  try {
    metadata = json::parse(found->second);
  } catch (const json::exception& e) {
    throw checkpoint_error("load_lora " + located.weights.string() + ": __metadata__ '" +
                           diffusers_metadata_key + "' is not JSON: " + e.what());
  }
  return parse_config(metadata, std::string(diffusers_config_prefix),
                      located.weights.string() + " __metadata__");
}

/// One key of the file: the module it adapts and the adapter parameter it fills.
struct lora_key {
  std::string key;        // the file's name
  std::string module;     // the Linear's name in the model
  std::string parameter;  // the adapter's parameter name
  bool is_a = true;
};

std::vector<lora_key> parse_keys(const checkpoint& ckpt, lora_format format) {
  const auto prefix = key_prefix(format);
  std::vector<lora_key> keys;
  for (const auto& key : ckpt.names()) {
    const auto fail = [&](const std::string& what) {
      throw checkpoint_error("load_lora " + ckpt.path().string() + ": key '" + key + "' " + what);
    };
    if (!key.starts_with(prefix)) fail("does not start with '" + std::string(prefix) + "'");
    const std::string parameter = key.substr(prefix.size());
    const bool is_a = parameter.ends_with(lora_a_suffix);
    if (!is_a && !parameter.ends_with(lora_b_suffix))
      fail("is not a LoRA weight (expected '" + std::string(prefix) +
           "<module>.lora_A.weight' or '.lora_B.weight')");
    const auto module = parameter.substr(0, parameter.size() - lora_a_suffix.size());
    if (module.empty()) fail("names no module");
    if (!safetensors::is_floating(ckpt.info(key).type))
      fail("has dtype " + std::string(safetensors::dtype_name(ckpt.info(key).type)) +
           ", expected a floating type");
    keys.push_back({key, module, parameter, is_a});
  }
  return keys;
}

/// The rank of a file without config: the first extent of its first `lora_A` (every other key
/// is then checked against it).
std::int64_t rank_of_first_lora_a(const checkpoint& ckpt, const std::vector<lora_key>& keys) {
  for (const auto& key : keys) {
    const auto shape = ckpt.info(key.key).shape;
    if (!key.is_a) continue;
    if (shape.size() != 2 || shape.front() < 1)
      throw checkpoint_error("load_lora " + ckpt.path().string() + ": key '" + key.key +
                             "' has shape " + star::to_string(shape) + ", expected [r, in]");
    return shape.front();
  }
  throw checkpoint_error("load_lora " + ckpt.path().string() + ": the file holds no lora_A key");
}

/// Why `module` is not adapted: absent, not a Linear, or matching no target.
std::string not_adapted_reason(torch::nn::Module& model, const std::string& module,
                               const lora_options& options) {
  const auto modules = model.named_modules(std::string(), /*include_self=*/false);
  const auto* found = modules.find(module);
  if (found == nullptr) return "the model has no module '" + module + "'";
  if (!std::dynamic_pointer_cast<torch::nn::LinearImpl>(*found))
    return "module '" + module + "' of the model is not a torch::nn::Linear";
  std::string list;
  for (const auto& target : options.target_modules) list += (list.empty() ? "" : ", ") + target;
  return "Linear '" + module + "' matches none of the targets [" + list + "]";
}

}  // namespace

void save_lora(const lora_adapter& adapter, const fs::path& folder, lora_format format,
               const std::string& base_model_name_or_path) {
  std::error_code error;
  fs::create_directories(folder, error);
  if (error) throw checkpoint_error("save_lora: cannot create the folder " + folder.string());

  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : adapter.named_parameters())
    tensors.emplace_back(std::string(key_prefix(format)) + item.key(), item.value());  // A or B

  const auto config = lora_config(adapter.options());
  if (format == lora_format::peft) {
    auto full = config;
    full["base_model_name_or_path"] =
        base_model_name_or_path.empty() ? json(nullptr) : json(base_model_name_or_path);
    save_peft(folder, tensors, full);
    return;
  }
  json prefixed = json::object();
  for (const auto& [field, value] : config.items())
    prefixed[std::string(diffusers_config_prefix) + field] = value;
  save_safetensors(folder / diffusers_weights_name, tensors,
                   {{"format", "pt"}, {diffusers_metadata_key, prefixed.dump(2)}});
}

loaded_lora load_lora(torch::nn::Module& model, const fs::path& path, at::ScalarType dtype) {
  const auto located = locate(path);
  const auto ckpt = checkpoint::open(located.weights);
  const auto source = "load_lora " + located.weights.string();
  const auto keys = parse_keys(ckpt, located.format);
  const auto config = read_config(located, ckpt);

  lora_options options;
  options.dtype = dtype;
  options.init = config ? config->init : lora_init::kaiming_uniform;
  options.rank = config ? config->rank : rank_of_first_lora_a(ckpt, keys);
  options.alpha = config ? config->alpha : static_cast<double>(options.rank);
  if (config && config->targets) {
    options.target_modules = *config->targets;
  } else {
    std::set<std::string> modules;
    for (const auto& key : keys) modules.insert(key.module);
    options.target_modules.assign(modules.begin(), modules.end());
  }

  // Every check before the model is touched: building the adapter freezes the model.
  std::map<std::string, std::vector<std::int64_t>> expected_shapes;
  try {
    for (auto& [name, shape] : lora_adapter::parameter_shapes(model, options))
      expected_shapes.emplace(name, std::move(shape));
  } catch (const star::error& e) {
    throw checkpoint_error(source + ": " + e.what());
  }
  std::map<std::string, at::Tensor> values;  // adapter parameter name -> its file tensor
  for (const auto& key : keys) {
    const auto expected = expected_shapes.find(key.parameter);
    if (expected == expected_shapes.end())
      throw checkpoint_error(source + ": key '" + key.key + "' adapts no Linear of the adapter: " +
                             not_adapted_reason(model, key.module, options));
    const auto actual = ckpt.info(key.key).shape;
    if (expected->second != actual)
      throw checkpoint_error(source + ": key '" + key.key + "' has shape " +
                             star::to_string(actual) + ", expected " +
                             star::to_string(expected->second) + " (" +
                             (key.is_a ? "lora_A [r, in]" : "lora_B [out, r]") +
                             ", r = " + std::to_string(options.rank) + ")");
    values.emplace(key.parameter, ckpt.tensor(key.key, dtype));  // [r, in] or [out, r]
  }
  for (const auto& [name, shape] : expected_shapes)
    if (!values.count(name))
      throw checkpoint_error(source + ": no key '" + std::string(key_prefix(located.format)) +
                             name + "' for an adapted Linear");

  loaded_lora out;
  out.format = located.format;
  out.file = located.weights;
  out.alpha_from_file = config.has_value();
  out.adapter = std::make_shared<lora_adapter>(model, options);
  auto parameters = out.adapter->named_parameters();
  const at::NoGradGuard no_grad;
  for (const auto& [name, value] : values) parameters[name].copy_(value);
  return out;
}

}  // namespace star::sd35
