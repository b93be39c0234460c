// CLIPTextModelWithProjection (CLIP-L and CLIP-G style) against transformers' golden outputs.

#include <catch2/catch.hpp>

#include <string>

#include "sd35/text/clip_text_model.hpp"
#include "text_fixtures.hpp"

namespace {

using star::sd35::clip_text_config;
using star::sd35::clip_text_model;
using namespace star::test::text;

constexpr double fixture_atol = 1e-5;

clip_text_model fixture_model(const std::string& which) {
  const auto config = clip_text_config::from_json(sidecar_config(which + ".json"), which);
  clip_text_model model(config);
  load_fixture_weights(*model, which + "_weights.safetensors");
  model->eval();
  return model;
}

void check_against_fixture(const std::string& which) {
  auto model = fixture_model(which);
  const auto io = read_io(which + "_io.safetensors");
  const auto layers = model->config().num_hidden_layers;
  const auto out = model->forward(
      io.at("input_ids"), star::sd35::text_encoder_options::all_hidden_states(layers));
  REQUIRE(out.hidden_states.size() == static_cast<std::size_t>(layers + 1));
  for (std::int64_t i = 0; i <= layers; ++i) {
    const auto name = "hidden_states." + std::to_string(i);
    require_near(out.hidden_states[i], io.at(name), fixture_atol, which + " " + name);
  }
  require_near(out.last_hidden_state, io.at("last_hidden_state"), fixture_atol,
               which + " last_hidden_state");
  require_near(out.penultimate_hidden_state, io.at("penultimate_hidden_state"), fixture_atol,
               which + " penultimate_hidden_state");
  require_near(out.pooled_output, io.at("pooled_output"), fixture_atol, which + " pooled_output");
  require_near(out.text_embeds, io.at("text_embeds"), fixture_atol, which + " text_embeds");
}

}  // namespace

TEST_CASE("CLIP-L (quick_gelu) matches transformers on every output", "[sd35][text][clip]") {
  check_against_fixture("clip_l");
}

TEST_CASE("CLIP-G (erf gelu) matches transformers on every output", "[sd35][text][clip]") {
  check_against_fixture("clip_g");
}

TEST_CASE("CLIP returns only the hidden states asked for, in the order asked",
          "[sd35][text][clip]") {
  auto model = fixture_model("clip_l");
  const auto io = read_io("clip_l_io.safetensors");
  const auto& ids = io.at("input_ids");
  const auto layers = model->config().num_hidden_layers;
  const auto plain = model->forward(ids);
  REQUIRE(plain.hidden_states.empty());
  require_near(plain.penultimate_hidden_state, io.at("penultimate_hidden_state"), fixture_atol,
               "penultimate_hidden_state without hidden states");
  const auto picked = model->forward(ids, {.hidden_states = {layers, 0, layers}});
  REQUIRE(picked.hidden_states.size() == 3);
  const auto last = "hidden_states." + std::to_string(layers);
  require_near(picked.hidden_states[0], io.at(last), fixture_atol, last);
  require_near(picked.hidden_states[1], io.at("hidden_states.0"), fixture_atol, "hidden_states.0");
  REQUIRE(picked.hidden_states[2].is_same(picked.hidden_states[0]));
  for (const std::int64_t bad : {std::int64_t{-1}, layers + 1}) {
    INFO("index " << bad);
    REQUIRE_THROWS_AS(model->forward(ids, {.hidden_states = {bad}}), star::option_error);
    REQUIRE_THROWS_WITH(model->forward(ids, {.hidden_states = {bad}}),
                        Catch::Contains("hidden_states") && Catch::Contains(std::to_string(bad)));
  }
}

TEST_CASE("legacy pooling (eos_token_id 2) takes the first largest id: rows 11, 11, 76",
          "[sd35][text][clip]") {
  for (const std::string which : {"clip_l", "clip_g"}) {
    INFO(which);
    auto model = fixture_model(which);
    const auto ids = read_io(which + "_io.safetensors").at("input_ids");
    const auto out = model->forward(ids);
    const std::int64_t expected_positions[] = {11, 11, 76};
    for (std::int64_t row = 0; row < 3; ++row) {
      INFO("row " << row);
      REQUIRE(ids[row][expected_positions[row]].item<std::int64_t>() == 49407);
      REQUIRE(at::equal(out.pooled_output[row],
                        out.last_hidden_state[row][expected_positions[row]]));
    }
  }
}

TEST_CASE("non-legacy pooling takes the first position holding eos_token_id",
          "[sd35][text][clip]") {
  auto config = clip_text_config::from_json(sidecar_config("clip_l.json"), "clip_l");
  const auto ids = read_io("clip_l_io.safetensors").at("input_ids");
  config.eos_token_id = ids[0][3].item<std::int64_t>();  // a word id of prompt 0
  clip_text_model model(config);
  load_fixture_weights(*model, "clip_l_weights.safetensors");
  const auto out = model->forward(ids);
  const auto first = ids[0].eq(config.eos_token_id).nonzero()[0][0].item<std::int64_t>();
  REQUIRE(first <= 3);
  REQUIRE(at::equal(out.pooled_output[0], out.last_hidden_state[0][first]));
  config.eos_token_id = 49407;  // the real EOS: same rows as the legacy argmax
  clip_text_model eos_model(config);
  load_fixture_weights(*eos_model, "clip_l_weights.safetensors");
  require_near(eos_model->forward(ids).pooled_output,
               read_io("clip_l_io.safetensors").at("pooled_output"), fixture_atol,
               "pooled_output with eos_token_id 49407");
}

TEST_CASE("CLIP runs in bfloat16 (and float16 where LibTorch has its kernels) close to float32", "[sd35][text][clip]") {
  const auto io = read_io("clip_g_io.safetensors");
  for (const auto& [dtype, device] : low_precision_runs()) {
    INFO(dtype << " on " << device);
    auto model = fixture_model("clip_g");
    model->to(device, dtype);
    const auto out = model->forward(io.at("input_ids"));
    REQUIRE(out.last_hidden_state.scalar_type() == dtype);
    REQUIRE(out.text_embeds.scalar_type() == dtype);
    require_near(out.last_hidden_state.cpu(), io.at("last_hidden_state"), 0.1,
                 "last_hidden_state");
    require_near(out.penultimate_hidden_state.cpu(), io.at("penultimate_hidden_state"), 0.1,
                 "penultimate_hidden_state");
    require_near(out.text_embeds.cpu(), io.at("text_embeds"), 0.1, "text_embeds");
  }
}

TEST_CASE("CLIP parameter names are exactly transformers' state_dict names", "[sd35][text][clip]") {
  auto model = fixture_model("clip_l");
  require_state_dict_names(*model, "clip_l_weights.safetensors");
}

TEST_CASE("the real CLIP-L and CLIP-G configs construct (meta device, no allocation)",
          "[sd35][text][clip]") {
  struct expected_model {
    clip_text_config config;
    std::int64_t parameters;  // 247 MB and 1.39 GB at fp16 (sd35.md)
    std::int64_t width;
  };
  for (const auto& expected : {expected_model{clip_text_config::clip_l(), 123'650'304, 768},
                               expected_model{clip_text_config::clip_g(), 694'659'840, 1280}}) {
    INFO("width " << expected.width);
    clip_text_model model(expected.config, at::TensorOptions().device(at::kMeta));
    std::int64_t total = 0;
    for (const auto& item : model->named_parameters()) {
      REQUIRE(item.value().is_meta());
      total += item.value().numel();
    }
    REQUIRE(total == expected.parameters);
    const auto params = model->named_parameters();
    const auto w = expected.width;
    REQUIRE(params["text_model.embeddings.token_embedding.weight"].sizes() ==
            at::IntArrayRef{49408, w});
    REQUIRE(params["text_projection.weight"].sizes() == at::IntArrayRef{w, w});
    REQUIRE(params.find("text_projection.bias") == nullptr);
    const auto last = expected.config.num_hidden_layers - 1;
    REQUIRE(params["text_model.encoder.layers." + std::to_string(last) + ".mlp.fc1.weight"]
                .sizes() == at::IntArrayRef{4 * w, w});
  }
}

TEST_CASE("CLIP config is read from config.json keys", "[sd35][text][clip][config]") {
  const auto config = clip_text_config::from_json(sidecar_config("clip_g.json"), "clip_g");
  REQUIRE(config.hidden_size == 20);
  REQUIRE(config.intermediate_size == 80);
  REQUIRE(config.num_hidden_layers == 3);
  REQUIRE(config.num_attention_heads == 4);
  REQUIRE(config.projection_dim == 16);
  REQUIRE(config.hidden_act == star::sd35::clip_activation::gelu);
  REQUIRE(config.eos_token_id == 2);
  REQUIRE(config.layer_norm_eps == 1e-5);
  const auto nested = clip_text_config::from_json(
      R"({"text_config": {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 2, "projection_dim": 4}})",
      "clip.json");
  REQUIRE(nested.hidden_size == 8);
  REQUIRE(nested.hidden_act == star::sd35::clip_activation::quick_gelu);
}

TEST_CASE("CLIP config errors name the key", "[sd35][text][clip][config]") {
  const std::string base = R"("intermediate_size": 16, "num_hidden_layers": 1,
      "num_attention_heads": 2, "projection_dim": 4)";
  const auto parse = [](const std::string& text) {
    return clip_text_config::from_json(text, "text_encoder/config.json");
  };
  REQUIRE_THROWS_AS(parse("{" + base + "}"), star::option_error);
  REQUIRE_THROWS_WITH(parse("{" + base + "}"), Catch::Contains("hidden_size") &&
                                                   Catch::Contains("text_encoder/config.json"));
  REQUIRE_THROWS_WITH(parse(R"({"hidden_size": "8", )" + base + "}"),
                      Catch::Contains("hidden_size") && Catch::Contains("integer"));
  REQUIRE_THROWS_WITH(parse(R"({"hidden_size": 8, "hidden_act": "relu", )" + base + "}"),
                      Catch::Contains("hidden_act"));
  REQUIRE_THROWS_WITH(parse(R"({"hidden_size": 7, )" + base + "}"),
                      Catch::Contains("num_attention_heads"));
  REQUIRE_THROWS_WITH(parse(R"({"hidden_size": 8, "layer_norm_eps": 0, )" + base + "}"),
                      Catch::Contains("layer_norm_eps"));
  REQUIRE_THROWS_AS(parse("{not json"), star::option_error);
  REQUIRE_THROWS_WITH(clip_text_config::from_file("/nonexistent/text_encoder"),
                      Catch::Contains("/nonexistent/text_encoder/config.json"));
  auto bad = clip_text_config::clip_l();
  bad.num_hidden_layers = 0;
  REQUIRE_THROWS_AS(clip_text_model(bad), star::option_error);
  REQUIRE_THROWS_WITH(clip_text_model(bad), Catch::Contains("num_hidden_layers"));
}

TEST_CASE("CLIP rejects wrong input_ids and names them", "[sd35][text][clip]") {
  auto model = fixture_model("clip_l");
  const auto ids = read_io("clip_l_io.safetensors").at("input_ids");
  REQUIRE_THROWS_AS(model->forward(ids[0]), star::shape_error);
  REQUIRE_THROWS_WITH(model->forward(ids[0]), Catch::Contains("input_ids") &&
                                                  Catch::Contains("[77]"));
  const auto too_long = at::zeros({1, 78}, at::kLong);
  REQUIRE_THROWS_AS(model->forward(too_long), star::shape_error);
  REQUIRE_THROWS_WITH(model->forward(too_long), Catch::Contains("[1, 78]"));
  REQUIRE_THROWS_AS(model->forward(ids.to(at::kFloat)), star::value_error);
  REQUIRE_THROWS_WITH(model->forward(ids.to(at::kFloat)), Catch::Contains("input_ids"));
  REQUIRE_THROWS_AS(model->forward(ids + 1), star::value_error);
  REQUIRE_THROWS_WITH(model->forward(ids + 1), Catch::Contains("49408"));
  REQUIRE_THROWS_AS(model->forward(at::Tensor{}), star::shape_error);
}

TEST_CASE("CLIP accepts sequences shorter than 77 and is causal", "[sd35][text][clip]") {
  auto model = fixture_model("clip_l");
  const auto ids = read_io("clip_l_io.safetensors").at("input_ids");
  const auto full = model->forward(ids);
  const auto prefix = model->forward(ids.slice(1, 0, 12));
  // Causal attention: the first 12 positions do not see the rest.
  require_near(prefix.last_hidden_state, full.last_hidden_state.slice(1, 0, 12), fixture_atol,
               "prefix last_hidden_state");
}
