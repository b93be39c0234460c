// vae_config: the fixture sidecar's config, the SD3.5 release's config.json, diffusers'
// defaults, files and folders, and every rejected key.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "sd35/sd35_fixtures.hpp"
#include "sd35/vae/config.hpp"
#include "star/core/error.hpp"
#include "support/scratch_dir.hpp"

namespace {

using star::sd35::vae_config;

/// The SD3.5 Medium release's vae/config.json (keys and values as published).
const char* const release_config = R"({
  "_class_name": "AutoencoderKL", "_diffusers_version": "0.31.0.dev0",
  "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D",
                       "DownEncoderBlock2D"],
  "force_upcast": true, "in_channels": 3, "latent_channels": 16, "latents_mean": null,
  "latents_std": null, "layers_per_block": 2, "mid_block_add_attention": true,
  "norm_num_groups": 32, "out_channels": 3, "sample_size": 1024, "scaling_factor": 1.5305,
  "shift_factor": 0.0609, "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D",
  "UpDecoderBlock2D", "UpDecoderBlock2D"], "use_post_quant_conv": false, "use_quant_conv": false
})";

bool same(const vae_config& a, const vae_config& b) {
  return a.in_channels == b.in_channels && a.out_channels == b.out_channels &&
         a.block_out_channels == b.block_out_channels &&
         a.layers_per_block == b.layers_per_block && a.latent_channels == b.latent_channels &&
         a.norm_num_groups == b.norm_num_groups && a.scaling_factor == b.scaling_factor &&
         a.shift_factor == b.shift_factor && a.use_quant_conv == b.use_quant_conv &&
         a.use_post_quant_conv == b.use_post_quant_conv &&
         a.mid_block_add_attention == b.mid_block_add_attention;
}

/// `release_config` with `key` set to the JSON `value`.
std::string release_with(const std::string& key, const std::string& value) {
  auto json = nlohmann::json::parse(release_config);
  json[key] = nlohmann::json::parse(value);
  return json.dump();
}

}  // namespace

TEST_CASE("the fixture sidecar's config parses to its values", "[vae][config]") {
  const auto config = vae_config::from_json(star::test::sidecar_config("sd3_vae_decoder.json"));
  REQUIRE(config.block_out_channels == std::vector<std::int64_t>{8, 16});
  REQUIRE(config.layers_per_block == 1);
  REQUIRE(config.latent_channels == 16);
  REQUIRE(config.norm_num_groups == 4);
  REQUIRE(config.in_channels == 3);
  REQUIRE(config.out_channels == 3);
  REQUIRE(config.scaling_factor == 1.5305);
  REQUIRE(config.shift_factor == 0.0609);
  REQUIRE_FALSE(config.use_quant_conv);
  REQUIRE_FALSE(config.use_post_quant_conv);
  REQUIRE(config.mid_block_add_attention);
}

TEST_CASE("the SD3.5 release config.json parses to sd35_medium_vae()", "[vae][config]") {
  REQUIRE(same(vae_config::from_json(release_config), star::sd35::sd35_medium_vae()));
}

TEST_CASE("missing keys keep diffusers' AutoencoderKL defaults, null shift_factor is 0",
          "[vae][config]") {
  const auto config = vae_config::from_json(R"({"shift_factor": null})");
  REQUIRE(same(config, vae_config{}));
  REQUIRE(config.block_out_channels == std::vector<std::int64_t>{64});
  REQUIRE(config.latent_channels == 4);
  REQUIRE(config.scaling_factor == 0.18215);
  REQUIRE(config.shift_factor == 0.0);
  REQUIRE(config.use_post_quant_conv);
}

TEST_CASE("from_file reads a config.json or the folder holding it, errors naming the file",
          "[vae][config]") {
  const auto folder = star::test::scratch_dir("vae_config");
  {
    std::ofstream(folder / "config.json") << release_config;
  }
  REQUIRE(same(vae_config::from_file(folder), star::sd35::sd35_medium_vae()));
  REQUIRE(same(vae_config::from_file(folder / "config.json"), star::sd35::sd35_medium_vae()));
  {
    std::ofstream(folder / "config.json") << release_with("latent_channels", "0");
  }
  REQUIRE_THROWS_WITH(vae_config::from_file(folder),
                      Catch::Contains("config.json") && Catch::Contains("latent_channels"));
  std::filesystem::remove_all(folder);
  REQUIRE_THROWS_AS(vae_config::from_file(folder), star::option_error);
  REQUIRE_THROWS_WITH(vae_config::from_file(folder), Catch::Contains("cannot open"));
}

TEST_CASE("a VAE of more levels than its scale factor can shift is rejected",
          "[vae][config][errors]") {
  vae_config config = vae_config::from_json(release_config);
  config.block_out_channels.assign(vae_config::max_levels + 1, 128);  // 2^16 pixels per cell
  REQUIRE_THROWS_AS(config.validate(), star::option_error);
  REQUIRE_THROWS_WITH(config.validate(), Catch::Contains("block_out_channels") &&
                                             Catch::Contains("1 to 16 levels"));
  config.block_out_channels.assign(vae_config::max_levels, 128);
  REQUIRE_NOTHROW(config.validate());
  CHECK(config.scale_factor() == std::int64_t{1} << 15);
}

TEST_CASE("bad keys and values throw option_error naming the key", "[vae][config][errors]") {
  const std::pair<std::string, std::string> cases[] = {
      {release_with("layers_per_block", "2.5"), "layers_per_block"},
      {release_with("block_out_channels", "\"wide\""), "block_out_channels"},
      {release_with("block_out_channels", "[]"), "block_out_channels"},
      {release_with("block_out_channels", "[128, 100]"), "block_out_channels"},
      {release_with("norm_num_groups", "0"), "norm_num_groups"},
      {release_with("scaling_factor", "-1.0"), "scaling_factor"},
      {release_with("scaling_factor", "\"big\""), "scaling_factor"},
      {release_with("use_quant_conv", "1"), "use_quant_conv"},
      {release_with("act_fn", "\"gelu\""), "act_fn"},
      {release_with("up_block_types", "[\"UpDecoderBlock2D\"]"), "up_block_types"},
      {release_with("up_block_types", "[\"AttnUpDecoderBlock2D\", \"UpDecoderBlock2D\", "
                                      "\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]"),
       "up_block_types"},
      {release_with("latents_mean", "[0.1, 0.2]"), "latents_mean"},
      {release_with("latents_std", "[1.0]"), "latents_std"},
      {release_with("decoder_blocks", "3"), "decoder_blocks"},
      {"[1, 2]", "JSON object"},
      {"{\"in_channels\": ", "not valid JSON"},
  };
  for (const auto& [text, key] : cases) {
    INFO(text);
    REQUIRE_THROWS_AS(vae_config::from_json(text), star::option_error);
    REQUIRE_THROWS_WITH(vae_config::from_json(text), Catch::Contains(key));
  }
}
