// T5EncoderModel (T5 v1.1) against transformers' golden outputs.

#include <catch2/catch.hpp>

#include <string>

#include "sd35/text/t5_encoder.hpp"
#include "text_fixtures.hpp"

namespace {

using star::sd35::t5_encoder;
using star::sd35::t5_encoder_config;
using namespace star::test::text;

constexpr double fixture_atol = 1e-5;

t5_encoder fixture_model() {
  const auto config = t5_encoder_config::from_json(sidecar_config("t5_encoder.json"), "t5");
  t5_encoder model(config);
  load_fixture_weights(*model, "t5_encoder_weights.safetensors");
  model->eval();
  return model;
}

}  // namespace

TEST_CASE("T5 matches transformers without a mask (as SD3 calls it), every hidden state",
          "[sd35][text][t5]") {
  auto model = fixture_model();
  const auto io = read_io("t5_encoder_io.safetensors");
  const auto layers = model->config().num_layers;
  const auto out = model->forward(io.at("input_ids"), {},
                                  star::sd35::text_encoder_options::all_hidden_states(layers));
  require_near(out.last_hidden_state, io.at("last_hidden_state"), fixture_atol,
               "last_hidden_state");
  REQUIRE(out.hidden_states.size() == static_cast<std::size_t>(layers + 1));
  for (std::int64_t i = 0; i <= layers; ++i) {
    const auto name = "hidden_states." + std::to_string(i);
    require_near(out.hidden_states[i], io.at(name), fixture_atol, name);
  }
}

TEST_CASE("T5 returns only the hidden states asked for, in the order asked",
          "[sd35][text][t5]") {
  auto model = fixture_model();
  const auto io = read_io("t5_encoder_io.safetensors");
  const auto& ids = io.at("input_ids");
  const auto layers = model->config().num_layers;
  REQUIRE(model->forward(ids).hidden_states.empty());
  const auto picked = model->forward(ids, {}, {.hidden_states = {layers, 1}});
  REQUIRE(picked.hidden_states.size() == 2);
  REQUIRE(picked.hidden_states[0].is_same(picked.last_hidden_state));
  require_near(picked.hidden_states[1], io.at("hidden_states.1"), fixture_atol, "hidden_states.1");
  REQUIRE_THROWS_AS(model->forward(ids, {}, {.hidden_states = {layers + 1}}), star::option_error);
  REQUIRE_THROWS_WITH(model->forward(ids, {}, {.hidden_states = {-2}}),
                      Catch::Contains("hidden_states") && Catch::Contains("-2"));
}

TEST_CASE("T5 matches transformers with an attention_mask", "[sd35][text][t5]") {
  auto model = fixture_model();
  const auto io = read_io("t5_encoder_io.safetensors");
  const auto masked = model->forward(io.at("input_ids"), io.at("attention_mask"));
  require_near(masked.last_hidden_state, io.at("last_hidden_state_masked"), fixture_atol,
               "last_hidden_state_masked");
  // The mask matters: the unmasked run differs.
  REQUIRE(max_abs_diff(masked.last_hidden_state, io.at("last_hidden_state")) > 1e-3);
}

TEST_CASE("T5 relative position buckets: bidirectional, 32 buckets, max distance 128",
          "[sd35][text][t5]") {
  const auto io = read_io("t5_encoder_io.safetensors");
  const auto buckets =
      star::sd35::t5_relative_position_bucket(io.at("relative_position"), 32, 128);
  REQUIRE(at::equal(buckets, io.at("relative_position_bucket")));
  // Hand-checked points: 0 -> 0, +1 -> 17, -1 -> 1, +7 -> 23 (exact), far away -> clipped.
  const auto probe = at::tensor(std::vector<std::int64_t>{0, 1, -1, 7, 1000, -1000});
  const auto probe_buckets = star::sd35::t5_relative_position_bucket(probe, 32, 128);
  REQUIRE(probe_buckets.toType(at::kLong).equal(
      at::tensor(std::vector<std::int64_t>{0, 17, 1, 23, 31, 15})));
  REQUIRE_THROWS_AS(star::sd35::t5_relative_position_bucket(probe, 2, 128), star::option_error);
}

TEST_CASE("T5 position bias rows for the first and last query match layer 0's",
          "[sd35][text][t5]") {
  auto model = fixture_model();
  const auto io = read_io("t5_encoder_io.safetensors");
  const auto length = io.at("input_ids").size(1);
  const auto bias = model->position_bias(length, length);  // [1, H, L, L]
  REQUIRE(bias.sizes() == at::IntArrayRef{1, 4, length, length});
  require_near(bias[0].select(1, 0), io.at("position_bias_q0"), fixture_atol, "q0");
  require_near(bias[0].select(1, length - 1), io.at("position_bias_qlast"), fixture_atol,
               "qlast");
}

TEST_CASE("T5 runs in bfloat16 (and float16 where LibTorch has its kernels) close to float32", "[sd35][text][t5]") {
  const auto io = read_io("t5_encoder_io.safetensors");
  for (const auto& [dtype, device] : low_precision_runs()) {
    INFO(dtype << " on " << device);
    auto model = fixture_model();
    model->to(device, dtype);
    const auto out = model->forward(io.at("input_ids"));
    REQUIRE(out.last_hidden_state.scalar_type() == dtype);
    require_near(out.last_hidden_state.cpu(), io.at("last_hidden_state"), 0.15,
                 "last_hidden_state");
  }
}

TEST_CASE("T5 keeps a float32 wo in a bfloat16 model (transformers' keep-in-fp32)",
          "[sd35][text][t5]") {
  auto model = fixture_model();
  model->to(at::kBFloat16);
  for (auto& item : model->named_parameters())
    if (item.key().find("DenseReluDense.wo") != std::string::npos)
      item.value().set_data(item.value().to(at::kFloat));
  const auto io = read_io("t5_encoder_io.safetensors");
  const auto out = model->forward(io.at("input_ids"));
  REQUIRE(out.last_hidden_state.scalar_type() == at::kBFloat16);
  require_near(out.last_hidden_state, io.at("last_hidden_state"), 0.15, "last_hidden_state");
}

TEST_CASE("T5 parameter names are exactly transformers' state_dict names, embedding tied",
          "[sd35][text][t5]") {
  auto model = fixture_model();
  require_state_dict_names(*model, "t5_encoder_weights.safetensors");
  const auto params = model->named_parameters(/*recurse=*/true);
  const auto [alias, owner] = star::sd35::t5_encoder_impl::tied_embedding_names();
  REQUIRE(params[alias].is_same(params[owner]));
}

TEST_CASE("the real T5-XXL config constructs on the meta device: 4.762B parameters",
          "[sd35][text][t5]") {
  t5_encoder model(t5_encoder_config::t5_xxl(), at::TensorOptions().device(at::kMeta));
  const auto [alias, owner] = star::sd35::t5_encoder_impl::tied_embedding_names();
  std::int64_t total = 0;
  for (const auto& item : model->named_parameters()) {
    REQUIRE(item.value().is_meta());
    if (item.key() != alias) total += item.value().numel();
  }
  REQUIRE(total == 4'762'310'656);  // 9.52 GB of bf16 shards, one embedding copy (sd35.md)
  const auto params = model->named_parameters();
  REQUIRE(params["shared.weight"].sizes() == at::IntArrayRef{32128, 4096});
  REQUIRE(params["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
              .sizes() == at::IntArrayRef{32, 64});
  REQUIRE(params.find("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight") ==
          nullptr);
  REQUIRE(params["encoder.block.23.layer.1.DenseReluDense.wi_0.weight"].sizes() ==
          at::IntArrayRef{10240, 4096});
  REQUIRE(params["encoder.block.23.layer.1.DenseReluDense.wo.weight"].sizes() ==
          at::IntArrayRef{4096, 10240});
}

TEST_CASE("T5 config is read from config.json keys, errors name the key",
          "[sd35][text][t5][config]") {
  const auto config = t5_encoder_config::from_json(sidecar_config("t5_encoder.json"), "t5");
  REQUIRE(config.vocab_size == 320);
  REQUIRE(config.d_model == 32);
  REQUIRE(config.d_kv == 8);
  REQUIRE(config.d_ff == 48);
  REQUIRE(config.num_layers == 2);
  REQUIRE(config.num_heads == 4);
  REQUIRE(config.relative_attention_num_buckets == 32);
  REQUIRE(config.relative_attention_max_distance == 128);
  REQUIRE(config.layer_norm_epsilon == 1e-6);

  const std::string base = R"("d_kv": 8, "d_ff": 48, "num_layers": 2, "num_heads": 4)";
  const auto parse = [](const std::string& text) {
    return t5_encoder_config::from_json(text, "text_encoder_3/config.json");
  };
  const std::string gated = R"("feed_forward_proj": "gated-gelu", )";
  REQUIRE_THROWS_AS(parse("{" + gated + base + "}"), star::option_error);
  REQUIRE_THROWS_WITH(parse("{" + gated + base + "}"),
                      Catch::Contains("d_model") && Catch::Contains("text_encoder_3/config.json"));
  REQUIRE_THROWS_WITH(parse(R"({"d_model": 32, )" + base + "}"),
                      Catch::Contains("feed_forward_proj"));
  REQUIRE_THROWS_WITH(parse(R"({"d_model": 32, "feed_forward_proj": "relu", )" + base + "}"),
                      Catch::Contains("feed_forward_proj") && Catch::Contains("relu"));
  REQUIRE_THROWS_WITH(parse("{" + gated + R"("d_model": 32.5, )" + base + "}"),
                      Catch::Contains("d_model") && Catch::Contains("integer"));
  REQUIRE_THROWS_WITH(
      parse("{" + gated + R"("d_model": 32, "relative_attention_num_buckets": 5, )" + base + "}"),
      Catch::Contains("relative_attention_num_buckets"));
  REQUIRE_THROWS_WITH(
      parse("{" + gated + R"("d_model": 32, "relative_attention_max_distance": 4, )" + base + "}"),
      Catch::Contains("relative_attention_max_distance"));
  auto bad = t5_encoder_config::t5_xxl();
  bad.num_heads = 0;
  REQUIRE_THROWS_WITH(t5_encoder(bad, at::TensorOptions().device(at::kMeta)),
                      Catch::Contains("num_heads"));
}

TEST_CASE("T5 rejects wrong input_ids and attention_mask and names them", "[sd35][text][t5]") {
  auto model = fixture_model();
  const auto io = read_io("t5_encoder_io.safetensors");
  const auto& ids = io.at("input_ids");
  REQUIRE_THROWS_AS(model->forward(ids[0]), star::shape_error);
  REQUIRE_THROWS_WITH(model->forward(ids[0]), Catch::Contains("input_ids") &&
                                                  Catch::Contains("[160]"));
  REQUIRE_THROWS_AS(model->forward(ids + 320), star::value_error);
  REQUIRE_THROWS_WITH(model->forward(ids + 320), Catch::Contains("input_ids"));
  const auto short_mask = io.at("attention_mask").slice(1, 0, 10);
  REQUIRE_THROWS_AS(model->forward(ids, short_mask), star::shape_error);
  REQUIRE_THROWS_WITH(model->forward(ids, short_mask),
                      Catch::Contains("attention_mask") && Catch::Contains("[2, 10]") &&
                          Catch::Contains("[2, 160]"));
  REQUIRE_THROWS_AS(model->forward(ids, io.at("attention_mask") * 2), star::value_error);
  REQUIRE_THROWS_WITH(model->forward(ids, io.at("attention_mask") * 2),
                      Catch::Contains("attention_mask"));
}
