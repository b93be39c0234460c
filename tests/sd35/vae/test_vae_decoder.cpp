// The SD3 VAE decoder against diffusers' AutoencoderKL (tests/data/sd35/sd3_vae_*: tiny random
// weights, float32): parameter names, the decode, every intermediate, a batch of 2, the full
// checkpoint with encoder tensors, the real SD3.5 size, bfloat16, and the rejected inputs.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "sd35/sd35_fixtures.hpp"
#include "sd35/vae/config.hpp"
#include "sd35/vae/decoder.hpp"
#include "star/core/error.hpp"
#include "star/torch/backend.hpp"
#include "support/compare.hpp"
#include "support/safetensors.hpp"

namespace {

using star::test::data_path;

/// The fixture's config: the "config" object of its JSON sidecar.
star::sd35::vae_config tiny_config() {
  return star::sd35::vae_config::from_json(star::test::sidecar_config("sd3_vae_decoder.json"));
}

/// The fixture tensor `name` of sd3_vae_io.safetensors, float32.
const at::Tensor& io_tensor(const std::string& name) {
  static const auto tensors = star::test::fixture_tensors(data_path("sd35/sd3_vae_io.safetensors"));
  return tensors.at(name);
}

/// Requires `got` within `tol` (max abs) of the fixture tensor `name`.
void require_matches(const at::Tensor& got, const std::string& name, double tol) {
  star::test::require_near(got, io_tensor(name), tol, name);
}

/// The tiny decoder with the fixture's decoder weights.
star::sd35::vae_decoder loaded_tiny_decoder() {
  star::sd35::vae_decoder vae(tiny_config());
  const auto report = star::test::load_fixture_weights(
      *vae, data_path("sd35/sd3_vae_decoder_weights.safetensors"));
  REQUIRE(report.unexpected.empty());
  REQUIRE(report.missing.empty());
  REQUIRE(report.mis_shaped.empty());
  vae->eval();
  return vae;
}

std::map<std::string, std::vector<std::int64_t>> parameter_shapes(torch::nn::Module& module) {
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const auto& item : module.named_parameters())
    shapes[item.key()] = std::vector<std::int64_t>(item.value().sizes().begin(),
                                                   item.value().sizes().end());
  return shapes;
}

}  // namespace

TEST_CASE("the decoder's parameters are exactly the fixture's diffusers names and shapes",
          "[vae]") {
  star::sd35::vae_decoder vae(tiny_config());
  std::map<std::string, std::vector<std::int64_t>> want;
  for (const auto& [name, t] :
       star::test::read_safetensors(data_path("sd35/sd3_vae_decoder_weights.safetensors")))
    want[name] = t.dims;
  REQUIRE(want.size() == 68);
  REQUIRE(parameter_shapes(*vae) == want);
}

TEST_CASE("decode of the denoised latent matches diffusers (z, decoded, image_0_1)", "[vae]") {
  at::NoGradGuard no_grad;
  auto vae = loaded_tiny_decoder();
  const auto latent = io_tensor("input.latent_denoised");  // [1, 16, 8, 8]
  const auto& config = vae->config();
  require_matches(latent / config.scaling_factor + config.shift_factor, "input.z", 1e-6);
  const auto decoded = vae->decode(latent);  // [1, 3, 16, 16]
  require_matches(decoded, "decoded", 1e-4);
  require_matches(vae->forward(io_tensor("input.z")), "decoded", 1e-4);
  require_matches(star::sd35::to_image_0_1(decoded), "image_0_1", 1e-4);
}

TEST_CASE("every decoder stage matches diffusers' intermediate", "[vae]") {
  at::NoGradGuard no_grad;
  auto vae = loaded_tiny_decoder();
  auto& decoder = *vae->decoder;
  auto h = decoder.conv_in(io_tensor("input.z"));  // [1, 16, 8, 8]
  require_matches(h, "inter.decoder.conv_in", 1e-5);
  h = decoder.mid_block(h);  // [1, 16, 8, 8]
  require_matches(h, "inter.decoder.mid_block", 1e-5);
  for (std::size_t i = 0; i < decoder.up_blocks.size(); ++i) {
    h = decoder.up_blocks[i](h);  // [1, C_i, 16, 16]
    require_matches(h, "inter.decoder.up_blocks." + std::to_string(i), 1e-4);
  }
  require_matches(decoder.conv_norm_out(h), "inter.decoder.conv_norm_out", 1e-4);
}

TEST_CASE("a batch of 2 decodes row by row like diffusers", "[vae]") {
  at::NoGradGuard no_grad;
  auto vae = loaded_tiny_decoder();
  const auto decoded = vae->forward(io_tensor("input.z_batch2"));  // [2, 3, 16, 16]
  require_matches(decoded, "decoded_batch2", 1e-4);
  require_matches(decoded.slice(0, 0, 1), "decoded", 1e-4);
}

TEST_CASE("load_vae_decoder loads the full AutoencoderKL checkpoint: encoder tensors are "
          "ignored, not errors",
          "[vae][load]") {
  at::NoGradGuard no_grad;
  const auto ckpt =
      star::sd35::checkpoint::open(data_path("sd35/sd3_vae_full_weights.safetensors"));
  REQUIRE(ckpt.contains("encoder.conv_in.weight"));
  star::sd35::vae_decoder vae(tiny_config());
  REQUIRE_THROWS_AS(star::sd35::load_into(*vae, ckpt), star::sd35::checkpoint_error);
  const auto reports = star::sd35::load_vae_decoder(vae, ckpt);
  REQUIRE(reports.size() == 1);
  REQUIRE(reports[0].ok());
  REQUIRE(reports[0].loaded.size() == 68);
  vae->eval();
  require_matches(vae->decode(io_tensor("input.latent_denoised")), "decoded", 1e-4);

  star::sd35::vae_decoder half(tiny_config());
  star::sd35::load_vae_decoder(half, ckpt, at::kHalf);
  REQUIRE(half->decoder->conv_out->weight.scalar_type() == at::kHalf);
}

TEST_CASE("load_vae_decoder names what a checkpoint lacks or mis-shapes", "[vae][load][errors]") {
  const auto ckpt =
      star::sd35::checkpoint::open(data_path("sd35/sd3_vae_decoder_weights.safetensors"));
  auto config = tiny_config();
  config.use_post_quant_conv = true;
  star::sd35::vae_decoder vae(config);
  REQUIRE_THROWS_AS(star::sd35::load_vae_decoder(vae, ckpt), star::sd35::checkpoint_error);
  REQUIRE_THROWS_WITH(star::sd35::load_vae_decoder(vae, ckpt),
                      Catch::Contains("weight") && Catch::Contains("post_quant_conv"));
  config = tiny_config();
  config.latent_channels = 8;
  star::sd35::vae_decoder narrow(config);
  REQUIRE_THROWS_AS(star::sd35::load_vae_decoder(narrow, ckpt), star::sd35::checkpoint_error);
  REQUIRE_THROWS_WITH(star::sd35::load_vae_decoder(narrow, ckpt),
                      Catch::Contains("conv_in.weight"));
}

TEST_CASE("the real SD3.5 VAE config builds diffusers' decoder shapes and parameter count",
          "[vae]") {
  const auto config = star::sd35::sd35_medium_vae();
  star::sd35::vae_decoder vae(config);
  const auto shapes = parameter_shapes(*vae);
  using dims = std::vector<std::int64_t>;
  const std::map<std::string, dims> table = {
      {"decoder.conv_in.weight", {512, 16, 3, 3}},
      {"decoder.mid_block.resnets.0.conv1.weight", {512, 512, 3, 3}},
      {"decoder.mid_block.attentions.0.group_norm.weight", {512}},
      {"decoder.mid_block.attentions.0.to_q.weight", {512, 512}},
      {"decoder.mid_block.attentions.0.to_out.0.weight", {512, 512}},
      {"decoder.mid_block.resnets.1.norm2.bias", {512}},
      {"decoder.up_blocks.0.resnets.2.conv2.weight", {512, 512, 3, 3}},
      {"decoder.up_blocks.0.upsamplers.0.conv.weight", {512, 512, 3, 3}},
      {"decoder.up_blocks.1.upsamplers.0.conv.weight", {512, 512, 3, 3}},
      {"decoder.up_blocks.2.resnets.0.conv_shortcut.weight", {256, 512, 1, 1}},
      {"decoder.up_blocks.2.resnets.0.norm1.weight", {512}},
      {"decoder.up_blocks.2.resnets.0.conv1.weight", {256, 512, 3, 3}},
      {"decoder.up_blocks.2.upsamplers.0.conv.weight", {256, 256, 3, 3}},
      {"decoder.up_blocks.3.resnets.0.conv_shortcut.weight", {128, 256, 1, 1}},
      {"decoder.up_blocks.3.resnets.2.conv2.weight", {128, 128, 3, 3}},
      {"decoder.conv_norm_out.weight", {128}},
      {"decoder.conv_out.weight", {3, 128, 3, 3}},
      {"decoder.conv_out.bias", {3}},
  };
  for (const auto& [name, want] : table) {
    INFO(name);
    REQUIRE(shapes.count(name) == 1);
    REQUIRE(shapes.at(name) == want);
  }
  REQUIRE(shapes.count("decoder.up_blocks.3.upsamplers.0.conv.weight") == 0);
  REQUIRE(shapes.count("decoder.up_blocks.0.resnets.3.conv1.weight") == 0);
  REQUIRE(shapes.count("post_quant_conv.weight") == 0);

  // Hand count from the reference table: conv_in, two 512 resnets + attention, four up blocks
  // of three resnets (two with a 1x1 shortcut), three upsampler convs, the output norm and conv.
  const auto conv = [](std::int64_t in, std::int64_t out, std::int64_t k) {
    return out * in * k * k + out;
  };
  const auto resnet = [&](std::int64_t in, std::int64_t out) {
    return 2 * in + conv(in, out, 3) + 2 * out + conv(out, out, 3) +
           (in != out ? conv(in, out, 1) : 0);
  };
  const std::int64_t expected =
      conv(16, 512, 3) + 2 * resnet(512, 512) + (2 * 512 + 4 * (512 * 512 + 512)) +
      3 * resnet(512, 512) + conv(512, 512, 3) + 3 * resnet(512, 512) + conv(512, 512, 3) +
      resnet(512, 256) + 2 * resnet(256, 256) + conv(256, 256, 3) + resnet(256, 128) +
      2 * resnet(128, 128) + 2 * 128 + conv(128, 3, 3);
  std::int64_t count = 0;
  for (const auto& p : vae->parameters()) count += p.numel();
  REQUIRE(expected == 49545475);
  REQUIRE(count == expected);
}

TEST_CASE("bfloat16 decode runs and stays near the float32 decode", "[vae][dtype]") {
  at::NoGradGuard no_grad;
  auto vae = loaded_tiny_decoder();
  const auto latent = io_tensor("input.latent_denoised");  // [1, 16, 8, 8] float32
  const auto reference = vae->decode(latent);              // [1, 3, 16, 16]
  vae->to(at::kBFloat16);
  const auto decoded = vae->decode(latent);  // [1, 3, 16, 16] bfloat16
  REQUIRE(decoded.scalar_type() == at::kBFloat16);
  REQUIRE(decoded.sizes() == reference.sizes());
  REQUIRE(at::isfinite(decoded).all().item<bool>());
  const double error = (decoded.to(at::kFloat) - reference).abs().max().item<double>();
  INFO("max |bf16 - fp32| " << error);
  REQUIRE(error < 0.1);
  REQUIRE(star::sd35::to_image_0_1(decoded).scalar_type() == at::kBFloat16);
}

TEST_CASE("to_image_0_1 is (x / 2 + 0.5) clamped to [0, 1]", "[vae]") {
  const auto x = at::tensor({-3.0, -1.0, 0.0, 0.5, 1.0, 2.5});
  const auto y = star::sd35::to_image_0_1(x);
  const std::vector<double> want{0.0, 0.0, 0.5, 0.75, 1.0, 1.0};
  star::test::require_close(star::libtorch::backend{at::kCPU, at::kDouble}.to_host(y), want,
                            1e-12);
}

TEST_CASE("use_post_quant_conv adds a 1x1 post_quant_conv applied before the decoder", "[vae]") {
  at::NoGradGuard no_grad;
  auto config = tiny_config();
  config.use_post_quant_conv = true;
  star::sd35::vae_decoder with_conv(config);
  const auto shapes = parameter_shapes(*with_conv);
  REQUIRE(shapes.at("post_quant_conv.weight") == std::vector<std::int64_t>{16, 16, 1, 1});
  REQUIRE(shapes.at("post_quant_conv.bias") == std::vector<std::int64_t>{16});
  star::test::load_fixture_weights(
      *with_conv, data_path("sd35/sd3_vae_decoder_weights.safetensors"), /*strict=*/false);
  const auto latent = io_tensor("input.latent_denoised");  // [1, 16, 8, 8]
  with_conv->post_quant_conv->weight.copy_(at::eye(16).reshape({16, 16, 1, 1}));
  with_conv->post_quant_conv->bias.zero_();
  require_matches(with_conv->decode(latent), "decoded", 1e-4);  // identity conv
  with_conv->post_quant_conv->bias.fill_(0.25);
  const auto shifted = with_conv->decode(latent - 0.25 * config.scaling_factor);
  require_matches(shifted, "decoded", 1e-4);  // the bias undoes the shifted latent
}

TEST_CASE("mid_block_add_attention false builds no attentions", "[vae]") {
  auto config = tiny_config();
  config.mid_block_add_attention = false;
  star::sd35::vae_decoder vae(config);
  const auto shapes = parameter_shapes(*vae);
  REQUIRE(shapes.size() == 68 - 10);  // group_norm and four Linear layers
  for (const auto& [name, dims] : shapes) REQUIRE(name.find("attentions") == std::string::npos);
  at::NoGradGuard no_grad;
  const std::vector<std::int64_t> want{1, 3, 8, 8};
  REQUIRE(vae->decode(at::zeros({1, 16, 4, 4})).sizes().vec() == want);
}

TEST_CASE("decode and forward reject latents of the wrong rank or channel count", "[vae][errors]") {
  star::sd35::vae_decoder vae(tiny_config());
  at::NoGradGuard no_grad;
  REQUIRE_THROWS_AS(vae->decode(at::zeros({16, 8, 8})), star::shape_error);
  REQUIRE_THROWS_WITH(vae->decode(at::zeros({16, 8, 8})), Catch::Contains("latent") &&
                                                              Catch::Contains("[16, 8, 8]"));
  REQUIRE_THROWS_AS(vae->decode(at::zeros({1, 4, 8, 8})), star::shape_error);
  REQUIRE_THROWS_WITH(vae->decode(at::zeros({1, 4, 8, 8})),
                      Catch::Contains("latent") && Catch::Contains("[1, 4, 8, 8]"));
  REQUIRE_THROWS_AS(vae->forward(at::zeros({2, 8, 8, 8})), star::shape_error);
  REQUIRE_THROWS_WITH(vae->forward(at::zeros({2, 8, 8, 8})), Catch::Contains("z"));
}

TEST_CASE("constructing from an invalid config throws naming the field", "[vae][errors]") {
  auto config = tiny_config();
  config.norm_num_groups = 3;  // 8 and 16 are not multiples of 3
  REQUIRE_THROWS_AS(star::sd35::vae_decoder(config), star::option_error);
  REQUIRE_THROWS_WITH(star::sd35::vae_decoder(config), Catch::Contains("block_out_channels"));
}
