#include "sd35/mmdit/config.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "sd35/config/config_keys.hpp"
#include "star/core/error.hpp"

namespace star::sd35 {

namespace {

using config_detail::config_keys;

qk_norm_kind qk_norm_value(const config_keys& keys) {
  if (keys.is_null("qk_norm")) return qk_norm_kind::none;
  const auto& value = keys.object().at("qk_norm");
  if (value.is_string() && value.get<std::string>() == "rms_norm") return qk_norm_kind::rms_norm;
  keys.fail("qk_norm", "must be null or \"rms_norm\", got " + value.dump());
}

}  // namespace

bool transformer_config::is_dual_attention(std::int64_t index) const {
  return std::find(dual_attention_layers.begin(), dual_attention_layers.end(), index) !=
         dual_attention_layers.end();
}

void transformer_config::validate() const {
  using config_detail::require_positive;
  require_positive(sample_size, "transformer config: sample_size");
  require_positive(patch_size, "transformer config: patch_size");
  require_positive(in_channels, "transformer config: in_channels");
  require_positive(num_layers, "transformer config: num_layers");
  require_positive(attention_head_dim, "transformer config: attention_head_dim");
  require_positive(num_attention_heads, "transformer config: num_attention_heads");
  require_positive(joint_attention_dim, "transformer config: joint_attention_dim");
  require_positive(caption_projection_dim, "transformer config: caption_projection_dim");
  require_positive(pooled_projection_dim, "transformer config: pooled_projection_dim");
  require_positive(out_channels, "transformer config: out_channels");
  require_positive(pos_embed_max_size, "transformer config: pos_embed_max_size");
  if (caption_projection_dim != inner_dim())
    throw option_error(
        "transformer config: caption_projection_dim must equal "
        "num_attention_heads * attention_head_dim = " +
        std::to_string(inner_dim()) + ", got " + std::to_string(caption_projection_dim));
  for (std::size_t i = 0; i < dual_attention_layers.size(); ++i) {
    const std::int64_t layer = dual_attention_layers[i];
    if (layer < 0 || layer >= num_layers)
      throw option_error("transformer config: dual_attention_layers entry " +
                         std::to_string(layer) +
                         " is outside [0, num_layers = " + std::to_string(num_layers) + ")");
    if (std::count(dual_attention_layers.begin(), dual_attention_layers.end(), layer) > 1)
      throw option_error("transformer config: dual_attention_layers lists " +
                         std::to_string(layer) + " twice");
  }
}

transformer_config transformer_config::from_json(std::string_view json_text) {
  const auto keys = config_keys::parse(json_text, "transformer config");
  transformer_config config;
  const std::pair<const char*, std::int64_t*> integers[] = {
      {"sample_size", &config.sample_size},
      {"patch_size", &config.patch_size},
      {"in_channels", &config.in_channels},
      {"num_layers", &config.num_layers},
      {"attention_head_dim", &config.attention_head_dim},
      {"num_attention_heads", &config.num_attention_heads},
      {"joint_attention_dim", &config.joint_attention_dim},
      {"caption_projection_dim", &config.caption_projection_dim},
      {"pooled_projection_dim", &config.pooled_projection_dim},
      {"out_channels", &config.out_channels},
      {"pos_embed_max_size", &config.pos_embed_max_size},
  };
  for (const auto& item : keys.object().items()) {
    const std::string& key = item.key();
    if (key.starts_with('_')) continue;
    const auto integer = std::find_if(std::begin(integers), std::end(integers),
                                      [&](const auto& entry) { return key == entry.first; });
    if (integer != std::end(integers))
      *integer->second = keys.integer(key);
    else if (key == "dual_attention_layers")  // null: none
      config.dual_attention_layers = keys.is_null(key) ? std::vector<std::int64_t>{}
                                                       : keys.integer_list(key);
    else if (key == "qk_norm")
      config.qk_norm = qk_norm_value(keys);
    else
      keys.unknown_key(key);
  }
  config.validate();
  return config;
}

transformer_config transformer_config::from_file(const std::filesystem::path& path) {
  return config_detail::parse_file(path, "config.json", "transformer config",
                                   [](const std::string& text) { return from_json(text); });
}

transformer_config sd35_medium() {
  transformer_config config;
  config.sample_size = 128;
  config.patch_size = 2;
  config.in_channels = 16;
  config.num_layers = 24;
  config.attention_head_dim = 64;
  config.num_attention_heads = 24;
  config.joint_attention_dim = 4096;
  config.caption_projection_dim = 1536;
  config.pooled_projection_dim = 2048;
  config.out_channels = 16;
  config.pos_embed_max_size = 384;
  config.dual_attention_layers = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  config.qk_norm = qk_norm_kind::rms_norm;
  return config;
}

}  // namespace star::sd35
