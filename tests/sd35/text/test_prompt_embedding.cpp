// SD3 prompt assembly: [CLIP-L | CLIP-G | 0] then T5 on the sequence, pooled [L | G], layout.

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "sd35/text/prompt_embedding.hpp"
#include "support/random.hpp"
#include "text_fixtures.hpp"

namespace {

using star::sd35::assemble_sd3_prompt;
using star::sd35::sd3_text_features;
using namespace star::test::text;

/// Seeded normal values as a float32 tensor of `sizes`.
at::Tensor seeded(std::vector<std::int64_t> sizes, std::uint64_t seed) {
  std::int64_t count = 1;
  for (const auto s : sizes) count *= s;
  auto values = star::test::normal(static_cast<std::size_t>(count), seed);
  return at::from_blob(values.data(), sizes, at::kDouble).to(at::kFloat);  // sizes
}

/// The real SD3.5 widths with `t5_length` T5 positions.
sd3_text_features real_width_features(std::int64_t batch, std::int64_t t5_length,
                                      std::uint64_t seed) {
  return {seeded({batch, 77, 768}, seed), seeded({batch, 77, 1280}, seed + 1),
          seeded({batch, 768}, seed + 2), seeded({batch, 1280}, seed + 3),
          seeded({batch, t5_length, 4096}, seed + 4)};
}

/// Checks the assembly's blocks against its inputs, element for element.
void require_assembled_from(const star::sd35::sd3_prompt_embedding& out,
                            const sd3_text_features& in) {
  const auto cl = in.clip_l_hidden.size(2);
  const auto cg = in.clip_g_hidden.size(2);
  const auto sc = in.clip_l_hidden.size(1);
  const auto lt = in.t5_hidden.size(1);
  const auto ct = in.t5_hidden.size(2);
  REQUIRE(out.prompt_embeds.sizes() == at::IntArrayRef{in.t5_hidden.size(0), sc + lt, ct});
  const auto clip_rows = out.prompt_embeds.slice(1, 0, sc);
  REQUIRE(at::equal(clip_rows.slice(2, 0, cl), in.clip_l_hidden));
  REQUIRE(at::equal(clip_rows.slice(2, cl, cl + cg), in.clip_g_hidden));
  REQUIRE(clip_rows.slice(2, cl + cg).eq(0).all().item<bool>());
  REQUIRE(at::equal(out.prompt_embeds.slice(1, sc), in.t5_hidden));
  REQUIRE(at::equal(out.pooled, at::cat({in.clip_l_pooled, in.clip_g_pooled}, -1)));
}

}  // namespace

TEST_CASE("SD3 assembly at the real widths: [B, 333, 4096] and [B, 2048] for Lt = 256",
          "[sd35][text][prompt]") {
  const std::uint64_t seed = 41;
  INFO("seed " << seed);
  const auto features = real_width_features(2, 256, seed);
  const auto out = assemble_sd3_prompt(features, 32, 32);
  REQUIRE(out.prompt_embeds.sizes() == at::IntArrayRef{2, 333, 4096});
  REQUIRE(out.pooled.sizes() == at::IntArrayRef{2, 2048});
  require_assembled_from(out, features);
  // Zero padding: channels 2048..4095 of the 77 CLIP rows.
  REQUIRE(out.prompt_embeds.slice(1, 0, 77).slice(2, 2048).abs().max().item<double>() == 0.0);
  REQUIRE(out.layout.total_tokens() == 1024 + 333);
  REQUIRE(out.layout.text_begin() == 1024);
  REQUIRE(out.layout.text_segments.size() == 2);
  REQUIRE(out.layout.text_segments[0].name == "clip");
  REQUIRE(out.layout.text_segments[0].length == 77);
  REQUIRE(out.layout.text_segments[1].name == "t5");
  REQUIRE(out.layout.text_segments[1].length == 256);
  REQUIRE(out.layout.segment_begin(1) == 77);
}

TEST_CASE("SD3 assembly takes the T5 length from the tensor (Flow-GRPO's 128)",
          "[sd35][text][prompt]") {
  const std::uint64_t seed = 7;
  INFO("seed " << seed);
  const auto features = real_width_features(3, 128, seed);
  const auto out = assemble_sd3_prompt(features, 64, 48);
  REQUIRE(out.prompt_embeds.sizes() == at::IntArrayRef{3, 205, 4096});
  require_assembled_from(out, features);
  REQUIRE(out.layout.grid_h == 64);
  REQUIRE(out.layout.grid_w == 48);
  REQUIRE(out.layout.image_first);
  REQUIRE(out.layout.text_segments[1].length == 128);
  REQUIRE(out.layout.total_tokens() == 64 * 48 + 205);
}

TEST_CASE("SD3 assembly of the fixture encoders' outputs (tiny widths)",
          "[sd35][text][prompt]") {
  const auto clip_l_io = read_io("clip_l_io.safetensors");  // widths 16 / 12
  const auto clip_g_io = read_io("clip_g_io.safetensors");  // widths 20 / 16
  const auto t5_io = read_io("t5_encoder_io.safetensors");  // [2, 160, 32]
  const auto rows = [](const at::Tensor& t) { return t.slice(0, 0, 2); };
  // 16 + 20 channels do not fit the fixture T5's 32: rejected, naming both.
  const sd3_text_features too_wide{
      rows(clip_l_io.at("penultimate_hidden_state")),
      rows(clip_g_io.at("penultimate_hidden_state")),
      rows(clip_l_io.at("text_embeds")), rows(clip_g_io.at("text_embeds")),
      t5_io.at("last_hidden_state")};
  REQUIRE_THROWS_AS(assemble_sd3_prompt(too_wide, 4, 4), star::shape_error);
  REQUIRE_THROWS_WITH(assemble_sd3_prompt(too_wide, 4, 4),
                      Catch::Contains("clip_l_hidden") && Catch::Contains("[2, 77, 16]") &&
                          Catch::Contains("[2, 77, 20]") && Catch::Contains("[2, 160, 32]"));
  // A wider T5 stream (the fixture's, tiled to 64 channels) takes them.
  auto fits = too_wide;
  fits.t5_hidden = at::cat({t5_io.at("last_hidden_state"), t5_io.at("last_hidden_state")}, -1);
  const auto out = assemble_sd3_prompt(fits, 4, 4);
  REQUIRE(out.prompt_embeds.sizes() == at::IntArrayRef{2, 77 + 160, 64});
  REQUIRE(out.pooled.sizes() == at::IntArrayRef{2, 12 + 16});
  require_assembled_from(out, fits);
  REQUIRE(out.layout.text_tokens() == 237);
}

TEST_CASE("SD3 assembly from the encoder output structs picks penultimate and text_embeds",
          "[sd35][text][prompt]") {
  star::sd35::clip_text_output clip_l, clip_g;
  clip_l.penultimate_hidden_state = seeded({1, 77, 4}, 1);
  clip_l.last_hidden_state = seeded({1, 77, 4}, 2);
  clip_l.text_embeds = seeded({1, 3}, 3);
  clip_l.pooled_output = seeded({1, 4}, 4);
  clip_g.penultimate_hidden_state = seeded({1, 77, 6}, 5);
  clip_g.last_hidden_state = seeded({1, 77, 6}, 6);
  clip_g.text_embeds = seeded({1, 5}, 7);
  clip_g.pooled_output = seeded({1, 6}, 8);
  star::sd35::t5_encoder_output t5;
  t5.last_hidden_state = seeded({1, 9, 16}, 9);
  const auto features = sd3_text_features::from(clip_l, clip_g, t5);
  REQUIRE(features.clip_l_hidden.is_same(clip_l.penultimate_hidden_state));
  REQUIRE(features.clip_g_hidden.is_same(clip_g.penultimate_hidden_state));
  REQUIRE(features.clip_l_pooled.is_same(clip_l.text_embeds));
  REQUIRE(features.clip_g_pooled.is_same(clip_g.text_embeds));
  REQUIRE(features.t5_hidden.is_same(t5.last_hidden_state));
  require_assembled_from(assemble_sd3_prompt(features, 2, 2), features);
}

TEST_CASE("SD3 assembly keeps bfloat16 and gradients", "[sd35][text][prompt]") {
  auto features = real_width_features(1, 16, 3);
  for (auto* t : {&features.clip_l_hidden, &features.clip_g_hidden, &features.clip_l_pooled,
                  &features.clip_g_pooled, &features.t5_hidden})
    *t = t->to(at::kBFloat16).requires_grad_(true);
  const auto out = assemble_sd3_prompt(features, 8, 8);
  REQUIRE(out.prompt_embeds.scalar_type() == at::kBFloat16);
  REQUIRE(out.pooled.scalar_type() == at::kBFloat16);
  require_assembled_from(out, features);
  (out.prompt_embeds.to(at::kFloat).sum() + out.pooled.to(at::kFloat).sum()).backward();
  REQUIRE(features.clip_g_hidden.grad().to(at::kFloat).eq(1).all().item<bool>());
  REQUIRE(features.t5_hidden.grad().to(at::kFloat).eq(1).all().item<bool>());
}

TEST_CASE("SD3 assembly rejects mismatched inputs and names them", "[sd35][text][prompt]") {
  const auto good = real_width_features(2, 8, 5);
  auto with = [&](auto change) {
    auto features = good;
    change(features);
    return features;
  };
  const auto rank = with([](sd3_text_features& f) { f.clip_l_hidden = f.clip_l_hidden[0]; });
  REQUIRE_THROWS_AS(assemble_sd3_prompt(rank, 4, 4), star::shape_error);
  REQUIRE_THROWS_WITH(assemble_sd3_prompt(rank, 4, 4),
                      Catch::Contains("clip_l_hidden") && Catch::Contains("[77, 768]"));
  const auto batch =
      with([](sd3_text_features& f) { f.clip_g_pooled = f.clip_g_pooled.slice(0, 0, 1); });
  REQUIRE_THROWS_AS(assemble_sd3_prompt(batch, 4, 4), star::shape_error);
  REQUIRE_THROWS_WITH(assemble_sd3_prompt(batch, 4, 4),
                      Catch::Contains("clip_g_pooled") && Catch::Contains("[1, 1280]"));
  const auto length =
      with([](sd3_text_features& f) { f.clip_g_hidden = f.clip_g_hidden.slice(1, 0, 70); });
  REQUIRE_THROWS_AS(assemble_sd3_prompt(length, 4, 4), star::shape_error);
  REQUIRE_THROWS_WITH(assemble_sd3_prompt(length, 4, 4),
                      Catch::Contains("clip_g_hidden") && Catch::Contains("[2, 70, 1280]"));
  const auto t5_rank = with([](sd3_text_features& f) { f.t5_hidden = f.t5_hidden[0]; });
  REQUIRE_THROWS_AS(assemble_sd3_prompt(t5_rank, 4, 4), star::shape_error);
  REQUIRE_THROWS_WITH(assemble_sd3_prompt(t5_rank, 4, 4), Catch::Contains("t5_hidden"));
  const auto dtype =
      with([](sd3_text_features& f) { f.clip_l_pooled = f.clip_l_pooled.to(at::kBFloat16); });
  REQUIRE_THROWS_AS(assemble_sd3_prompt(dtype, 4, 4), star::value_error);
  REQUIRE_THROWS_WITH(assemble_sd3_prompt(dtype, 4, 4), Catch::Contains("clip_l_pooled"));
  const auto missing = with([](sd3_text_features& f) { f.clip_g_hidden = at::Tensor{}; });
  REQUIRE_THROWS_AS(assemble_sd3_prompt(missing, 4, 4), star::shape_error);
  REQUIRE_THROWS_WITH(assemble_sd3_prompt(missing, 4, 4), Catch::Contains("clip_g_hidden"));
  REQUIRE_THROWS_AS(assemble_sd3_prompt(good, 0, 4), star::option_error);
  REQUIRE_THROWS_WITH(assemble_sd3_prompt(good, 0, 4), Catch::Contains("grid"));
}
