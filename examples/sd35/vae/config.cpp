#include "sd35/vae/config.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "sd35/config/config_keys.hpp"
#include "star/core/error.hpp"

namespace star::sd35 {

namespace {

using json = nlohmann::json;
using config_detail::config_keys;

/// @brief Requires the value at `key` (a string or a list of strings) to be `allowed`
/// throughout; returns the number of entries.
std::size_t require_only(const config_keys& keys, const std::string& key,
                         std::string_view allowed) {
  const auto& value = keys.object().at(key);
  const auto check = [&](const json& item) {
    if (!item.is_string() || item.get<std::string>() != allowed)
      keys.fail(key, "must be \"" + std::string(allowed) + "\" (the only kind supported), got " +
                         item.dump());
  };
  if (!value.is_array()) {
    check(value);
    return 1;
  }
  for (const auto& item : value) check(item);
  return value.size();
}

}  // namespace

void vae_config::validate() const {
  using config_detail::require_positive;
  require_positive(in_channels, "vae config: in_channels");
  require_positive(out_channels, "vae config: out_channels");
  require_positive(layers_per_block, "vae config: layers_per_block");
  require_positive(latent_channels, "vae config: latent_channels");
  require_positive(norm_num_groups, "vae config: norm_num_groups");
  if (block_out_channels.empty() || block_out_channels.size() > max_levels)
    throw option_error("vae config: block_out_channels must have 1 to " +
                       std::to_string(max_levels) + " levels (a scale factor up to 2^" +
                       std::to_string(max_levels - 1) + "), got " +
                       std::to_string(block_out_channels.size()));
  for (const std::int64_t channels : block_out_channels)
    if (channels < 1 || channels % norm_num_groups != 0)
      throw option_error("vae config: block_out_channels entries must be positive multiples of "
                         "norm_num_groups = " + std::to_string(norm_num_groups) + ", got " +
                         std::to_string(channels));
  if (!std::isfinite(scaling_factor) || !(scaling_factor > 0.0))
    throw option_error("vae config: scaling_factor must be finite and > 0, got " +
                       std::to_string(scaling_factor));
  if (!std::isfinite(shift_factor))
    throw option_error("vae config: shift_factor must be finite, got " +
                       std::to_string(shift_factor));
}

vae_config vae_config::from_json(std::string_view json_text) {
  const auto keys = config_keys::parse(json_text, "vae config");
  vae_config config;
  const std::pair<const char*, std::int64_t*> integers[] = {
      {"in_channels", &config.in_channels},
      {"out_channels", &config.out_channels},
      {"layers_per_block", &config.layers_per_block},
      {"latent_channels", &config.latent_channels},
      {"norm_num_groups", &config.norm_num_groups},
  };
  const std::pair<const char*, bool*> booleans[] = {
      {"use_quant_conv", &config.use_quant_conv},
      {"use_post_quant_conv", &config.use_post_quant_conv},
      {"mid_block_add_attention", &config.mid_block_add_attention},
  };
  const char* const ignored[] = {"down_block_types", "sample_size", "force_upcast"};
  const auto find = [](const auto& table, const std::string& key) {
    return std::find_if(std::begin(table), std::end(table),
                        [&](const auto& entry) { return key == entry.first; });
  };
  std::size_t up_block_count = 0;
  for (const auto& item : keys.object().items()) {
    const std::string& key = item.key();
    if (key.starts_with('_') ||
        std::find(std::begin(ignored), std::end(ignored), key) != std::end(ignored))
      continue;
    if (const auto integer = find(integers, key); integer != std::end(integers))
      *integer->second = keys.integer(key);
    else if (const auto boolean = find(booleans, key); boolean != std::end(booleans))
      *boolean->second = keys.boolean(key);
    else if (key == "block_out_channels")
      config.block_out_channels = keys.integer_list(key);
    else if (key == "scaling_factor")  // null: the default
      config.scaling_factor = keys.is_null(key) ? config.scaling_factor : keys.number(key);
    else if (key == "shift_factor")  // null: diffusers' "no shift", i.e. 0
      config.shift_factor = keys.is_null(key) ? 0.0 : keys.number(key);
    else if (key == "act_fn")
      require_only(keys, key, "silu");
    else if (key == "up_block_types")
      up_block_count = require_only(keys, key, "UpDecoderBlock2D");
    else if (key == "latents_mean" || key == "latents_std") {
      if (!keys.is_null(key))
        keys.fail(key,
                  "must be null: per-channel latent statistics are not supported (SD3 has none)");
    } else
      keys.unknown_key(key);
  }
  if (keys.has("up_block_types") && up_block_count != config.block_out_channels.size())
    keys.fail("up_block_types", "must have one entry per block_out_channels entry (" +
                                    std::to_string(config.block_out_channels.size()) +
                                    "), got " + std::to_string(up_block_count));
  config.validate();
  return config;
}

vae_config vae_config::from_file(const std::filesystem::path& path) {
  return config_detail::parse_file(path, "config.json", "vae config",
                                   [](const std::string& text) { return from_json(text); });
}

vae_config sd35_medium_vae() {
  vae_config config;
  config.block_out_channels = {128, 256, 512, 512};
  config.layers_per_block = 2;
  config.latent_channels = 16;
  config.norm_num_groups = 32;
  config.scaling_factor = 1.5305;
  config.shift_factor = 0.0609;
  config.use_quant_conv = false;
  config.use_post_quant_conv = false;
  config.mid_block_add_attention = true;
  return config;
}

}  // namespace star::sd35
