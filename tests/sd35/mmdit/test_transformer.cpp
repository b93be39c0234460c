// The MMDiT-X denoiser against diffusers' SD3Transformer2DModel (tests/data/sd35/
// sd3_transformer*.{json,safetensors}, tests/data/sd3_transformer_io.safetensors): config,
// state-dict names, outputs, every intermediate, skip-layer guidance, the attention observer
// (q, k, LSE and star's image-to-text probabilities), bfloat16, float16, and input errors.

// LibTorch first: its glog defines CHECK, which Catch must own.
#include <torch/torch.h>

#include "sd35/mmdit/transformer.hpp"
#include "star/torch/attention_lse.hpp"
#undef CHECK

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "sd35/float16_kernels.hpp"
#include "sd35/sd35_mmdit_fixture.hpp"

namespace {

using namespace star::sd35;
using star::test::data_path;
using star::test::fixture_transformer;
using star::test::fixture_transformer_config;
using star::test::fixture_transformer_weights;
using star::test::require_near;

const std::map<std::string, at::Tensor>& io_tensors() {
  static const auto tensors =
      star::test::fixture_tensors(data_path("sd3_transformer_io.safetensors"));
  return tensors;
}

const at::Tensor& io(const std::string& name) {
  const auto found = io_tensors().find(name);
  if (found == io_tensors().end()) FAIL("fixture tensor " << name << " is missing");
  return found->second;
}

/// The forward of fixture case `name` ("case1", "case2").
at::Tensor run_case(sd3_transformer& model, const std::string& name,
                    const forward_options& options = {}) {
  at::NoGradGuard no_grad;
  return model.forward(io(name + ".input.hidden_states"), io(name + ".input.encoder_hidden_states"),
                       io(name + ".input.pooled_projections"), io(name + ".input.timestep"),
                       options);  // [B, C, H, W]
}

/// Keeps copies of everything the joint attention reports.
struct recording_observer : attention_observer {
  std::vector<int> blocks;
  std::map<int, at::Tensor> q, k, lse;  // [B, H, T, D], same, [B, H, T]
  std::vector<star::token_layout> layouts;

  void on_joint_attention(int block, const at::Tensor& q_, const at::Tensor& k_,
                          const at::Tensor& lse_, const star::token_layout& layout) override {
    blocks.push_back(block);
    q[block] = q_.clone();
    k[block] = k_.clone();
    lse[block] = lse_.clone();
    layouts.push_back(layout);
  }
};

const std::vector<std::string> cases = {"case1", "case2"};
constexpr double tolerance = 1e-4;  // the fixture README's float32 tolerance for the transformer

}  // namespace

TEST_CASE("config: the fixture sidecar's config parses to every field", "[sd35][mmdit][config]") {
  const auto config = fixture_transformer_config();
  CHECK(config.sample_size == 8);
  CHECK(config.patch_size == 2);
  CHECK(config.in_channels == 16);
  CHECK(config.num_layers == 3);
  CHECK(config.attention_head_dim == 16);
  CHECK(config.num_attention_heads == 2);
  CHECK(config.joint_attention_dim == 32);
  CHECK(config.caption_projection_dim == 32);
  CHECK(config.pooled_projection_dim == 24);
  CHECK(config.out_channels == 16);
  CHECK(config.pos_embed_max_size == 16);
  CHECK(config.dual_attention_layers == std::vector<std::int64_t>{0, 1});
  CHECK(config.qk_norm == qk_norm_kind::rms_norm);
  CHECK(config.inner_dim() == 32);
  CHECK(config.is_dual_attention(1));
  CHECK_FALSE(config.is_dual_attention(2));
}

TEST_CASE("config: sd35_medium is the SD3.5 Medium release config.json", "[sd35][mmdit][config]") {
  // The release transformer/config.json (sd35.md §0), with diffusers' bookkeeping keys.
  const std::string release = R"({
    "_class_name": "SD3Transformer2DModel", "_diffusers_version": "0.31.0.dev0",
    "attention_head_dim": 64, "caption_projection_dim": 1536,
    "dual_attention_layers": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    "in_channels": 16, "joint_attention_dim": 4096, "num_attention_heads": 24,
    "num_layers": 24, "out_channels": 16, "patch_size": 2, "pooled_projection_dim": 2048,
    "pos_embed_max_size": 384, "qk_norm": "rms_norm", "sample_size": 128})";
  const auto parsed = transformer_config::from_json(release);
  const auto medium = sd35_medium();
  REQUIRE_NOTHROW(medium.validate());
  CHECK(medium.inner_dim() == 1536);
  for (const auto* config : {&parsed, &medium}) {
    CHECK(config->num_layers == 24);
    CHECK(config->num_attention_heads == 24);
    CHECK(config->attention_head_dim == 64);
    CHECK(config->caption_projection_dim == 1536);
    CHECK(config->joint_attention_dim == 4096);
    CHECK(config->pooled_projection_dim == 2048);
    CHECK(config->pos_embed_max_size == 384);
    CHECK(config->sample_size == 128);
    CHECK(config->patch_size == 2);
    CHECK(config->in_channels == 16);
    CHECK(config->out_channels == 16);
    CHECK(config->dual_attention_layers.size() == 13);
    CHECK(config->is_dual_attention(12));
    CHECK_FALSE(config->is_dual_attention(13));
    CHECK(config->qk_norm == qk_norm_kind::rms_norm);
  }
  // SD3 Medium v1 writes "qk_norm": null and no dual layers.
  const auto v1 = transformer_config::from_json(
      R"({"num_layers": 24, "num_attention_heads": 24, "caption_projection_dim": 1536,
          "qk_norm": null, "dual_attention_layers": []})");
  CHECK(v1.qk_norm == qk_norm_kind::none);
  CHECK(v1.dual_attention_layers.empty());
}

TEST_CASE("config: bad keys and values are rejected naming the key", "[sd35][mmdit][config]") {
  const auto rejects = [](const std::string& json, const std::string& named) {
    INFO(json);
    REQUIRE_THROWS_AS(transformer_config::from_json(json), star::option_error);
    REQUIRE_THROWS_WITH(transformer_config::from_json(json), Catch::Contains(named));
  };
  rejects(R"({"num_layer": 3})", "num_layer");
  rejects(R"({"num_layers": "24"})", "num_layers");
  rejects(R"({"num_layers": 2.5})", "num_layers");
  rejects(R"({"patch_size": 0})", "patch_size");
  rejects(R"({"qk_norm": "layer_norm"})", "qk_norm");
  rejects(R"({"dual_attention_layers": [0, 18]})", "dual_attention_layers");
  rejects(R"({"dual_attention_layers": [1, 1]})", "dual_attention_layers");
  rejects(R"({"dual_attention_layers": 3})", "dual_attention_layers");
  rejects(R"({"caption_projection_dim": 1536})", "caption_projection_dim");
  rejects(R"({"num_layers": 3)", "JSON");
  rejects(R"([1, 2])", "object");
  REQUIRE_THROWS_AS(transformer_config::from_file("/nonexistent/config.json"), star::option_error);
  REQUIRE_THROWS_WITH(transformer_config::from_file("/nonexistent/config.json"),
                      Catch::Contains("/nonexistent/config.json"));
  transformer_config bad;
  bad.num_attention_heads = -1;
  REQUIRE_THROWS_WITH(sd3_transformer(bad), Catch::Contains("num_attention_heads"));
}

TEST_CASE("module: parameter and buffer names and shapes are diffusers' state dict",
          "[sd35][mmdit][module]") {
  const sd3_transformer model(fixture_transformer_config());
  const auto file = star::test::read_safetensors(fixture_transformer_weights());
  std::map<std::string, std::vector<std::int64_t>> module_shapes;
  for (const auto& item : model.named_parameters())
    module_shapes[item.key()] = item.value().sizes().vec();
  for (const auto& item : model.named_buffers())
    module_shapes[item.key()] = item.value().sizes().vec();
  std::map<std::string, std::vector<std::int64_t>> file_shapes;
  for (const auto& [name, tensor] : file) file_shapes[name] = tensor.dims;
  for (const auto& [name, dims] : file_shapes) {
    INFO(name);
    REQUIRE(module_shapes.count(name) == 1);
    CHECK(module_shapes[name] == dims);
  }
  CHECK(module_shapes.size() == file_shapes.size());
  CHECK(model.named_buffers().size() == 1);  // pos_embed.pos_embed
  CHECK(model.transformer_blocks[0]->dual_attention());
  CHECK(model.transformer_blocks[2]->context_pre_only());
  CHECK_FALSE(model.transformer_blocks[2]->dual_attention());
}

TEST_CASE("module: the positional table built at construction is diffusers' table",
          "[sd35][mmdit][module]") {
  const sd3_transformer model(fixture_transformer_config());
  const auto file = star::test::fixture_tensors(fixture_transformer_weights());
  require_near(model.pos_embed->pos_embed, file.at("pos_embed.pos_embed"), 1e-6,
               "pos_embed.pos_embed");
}

TEST_CASE(
    "module: unpatchify puts column (P p + q) C + c of token (row, col) at pixel "
    "(P row + p, P col + q)",
    "[sd35][mmdit][module]") {
  const sd3_transformer model(fixture_transformer_config());
  const std::int64_t grid_h = 3, grid_w = 2, patch = 2, channels = 16;
  const auto tokens = at::arange(2 * grid_h * grid_w * patch * patch * channels, at::kFloat)
                          .reshape({2, grid_h * grid_w, patch * patch * channels});  // [B, N, 64]
  const auto image = model.unpatchify(tokens, grid_h, grid_w);                       // [B, C, 6, 4]
  REQUIRE(image.sizes() == at::IntArrayRef{2, channels, grid_h * patch, grid_w * patch});
  for (std::int64_t b = 0; b < 2; ++b)
    for (std::int64_t row = 0; row < grid_h; ++row)
      for (std::int64_t col = 0; col < grid_w; ++col)
        for (std::int64_t p = 0; p < patch; ++p)
          for (std::int64_t q = 0; q < patch; ++q)
            for (std::int64_t c = 0; c < channels; ++c)
              REQUIRE(image[b][c][patch * row + p][patch * col + q].item<float>() ==
                      tokens[b][grid_w * row + col][(patch * p + q) * channels + c].item<float>());
  REQUIRE_THROWS_AS(model.unpatchify(tokens, 2, 2), star::shape_error);
  REQUIRE_THROWS_WITH(model.unpatchify(tokens, 2, 2), Catch::Contains("tokens"));
}

TEST_CASE("forward: case1 (square, B=2) and case2 (non-square) outputs match diffusers",
          "[sd35][mmdit][forward]") {
  const auto model = fixture_transformer();
  for (const auto& name : cases) {
    const auto output = run_case(*model, name);
    CHECK(output.scalar_type() == at::kFloat);
    require_near(output, io(name + ".output"), tolerance, name + ".output");
  }
}

TEST_CASE("forward: every intermediate matches diffusers stage by stage",
          "[sd35][mmdit][forward]") {
  const auto model = fixture_transformer();
  at::NoGradGuard no_grad;
  for (const auto& name : cases) {
    const auto inter = name + ".inter.";
    require_near(model->pos_embed->forward(io(name + ".input.hidden_states")),
                 io(inter + "pos_embed_out"), tolerance, inter + "pos_embed_out");
    const auto temb = io(inter + "temb");  // [B, D] (a handle: GCC 14 warns on a reference)
    require_near(model->time_text_embed->forward(io(name + ".input.timestep"),
                                                 io(name + ".input.pooled_projections")),
                 temb, tolerance, inter + "temb");
    require_near(model->context_embedder->forward(io(name + ".input.encoder_hidden_states")),
                 io(inter + "context_embedder_out"), tolerance, inter + "context_embedder_out");
    // Each block on diffusers' input to it.
    at::Tensor x = io(inter + "pos_embed_out"), c = io(inter + "context_embedder_out");
    for (std::size_t i = 0; i < model->transformer_blocks.size(); ++i) {
      const auto prefix = inter + "block" + std::to_string(i) + "_out.";
      const auto [image, text] = model->transformer_blocks[i]->forward(x, c, temb);
      require_near(image, io(prefix + "hidden_states"), tolerance, prefix + "hidden_states");
      x = io(prefix + "hidden_states");
      if (i + 1 < model->transformer_blocks.size()) {
        require_near(text, io(prefix + "encoder_hidden_states"), tolerance,
                     prefix + "encoder_hidden_states");
        c = io(prefix + "encoder_hidden_states");
      } else {
        CHECK_FALSE(text.defined());
      }
    }
    require_near(model->norm_out->forward(x, temb), io(inter + "norm_out"), tolerance,
                 inter + "norm_out");
  }
}

TEST_CASE("forward: skip_layers = [1] matches diffusers' skip-layer guidance path",
          "[sd35][mmdit][forward]") {
  const auto model = fixture_transformer();
  forward_options options;
  options.skip_layers = {1};
  const auto skipped = run_case(*model, "case1", options);
  require_near(skipped, io("case1.output_skip_layers_1"), tolerance, "case1.output_skip_layers_1");
  // And it differs from the full forward, so the option did something.
  CHECK((skipped - io("case1.output")).abs().max().item<double>() > 1e-3);
  options.skip_layers = {3};
  REQUIRE_THROWS_AS(run_case(*model, "case1", options), star::option_error);
  REQUIRE_THROWS_WITH(run_case(*model, "case1", options), Catch::Contains("skip_layers"));
}

TEST_CASE("observer: joint q, k, LSE and star's image-to-text probabilities match the capture",
          "[sd35][mmdit][observer]") {
  const auto model = fixture_transformer();
  const star::libtorch::backend be;
  for (const auto& name : cases) {
    recording_observer observer;
    forward_options options;
    options.observer = &observer;
    const auto output = run_case(*model, name, options);
    require_near(output, io(name + ".output"), tolerance, name + ".output with the observer");
    REQUIRE(observer.blocks == std::vector<int>{0, 1, 2});
    const auto hidden = io(name + ".input.hidden_states");  // [B, C, H, W]
    const std::int64_t text_tokens = io(name + ".input.encoder_hidden_states").size(1);
    for (const auto& layout : observer.layouts) {
      CHECK(layout.grid_h == hidden.size(2) / 2);
      CHECK(layout.grid_w == hidden.size(3) / 2);
      CHECK(layout.image_first);
      REQUIRE(layout.text_segments.size() == 1);
      CHECK(layout.text_segments[0].length == text_tokens);
    }
    std::vector<std::int64_t> columns(static_cast<std::size_t>(text_tokens));
    std::iota(columns.begin(), columns.end(), 0);
    for (int block = 0; block < 3; ++block) {
      const auto suffix = ".block" + std::to_string(block);
      require_near(observer.q[block], io(name + ".attn_q" + suffix), tolerance,
                   name + " q" + suffix);
      require_near(observer.k[block], io(name + ".attn_k" + suffix), tolerance,
                   name + " k" + suffix);
      CHECK(observer.lse[block].scalar_type() == at::kFloat);
      CHECK_FALSE(observer.lse[block].requires_grad());
      require_near(observer.lse[block], io(name + ".attn_lse_all" + suffix), tolerance,
                   name + " lse" + suffix);
      const auto probs = star::libtorch::selected_attention_probabilities(
          be, observer.q[block], observer.k[block], observer.layouts[0], columns,
          observer.lse[block]);  // [B, H, N, L]
      require_near(probs, io(name + ".attn_probs_img2txt" + suffix), 1e-5,
                   name + " img2txt probabilities" + suffix);
    }
  }
}

TEST_CASE("observer: text segments reach the layout, must sum to L, skipped blocks are silent",
          "[sd35][mmdit][observer]") {
  const auto model = fixture_transformer();
  recording_observer observer;
  forward_options options;
  options.observer = &observer;
  options.skip_layers = {0};
  options.text_segments = {{"clip", 5}, {"t5", 7}};
  run_case(*model, "case1", options);
  CHECK(observer.blocks == std::vector<int>{1, 2});
  REQUIRE(observer.layouts.size() == 2);
  const auto& layout = observer.layouts[0];
  REQUIRE(layout.text_segments.size() == 2);
  CHECK(layout.text_segments[0].name == "clip");
  CHECK(layout.text_segments[1].length == 7);
  CHECK(layout.text_begin() == 16);
  options.text_segments = {{"clip", 5}, {"t5", 6}};
  REQUIRE_THROWS_AS(run_case(*model, "case1", options), star::option_error);
  REQUIRE_THROWS_WITH(run_case(*model, "case1", options), Catch::Contains("text_segments"));
}

TEST_CASE("dtype: a bfloat16 module runs and stays close to float32", "[sd35][mmdit][dtype]") {
  const auto model = fixture_transformer();
  const auto reference = run_case(*model, "case1");
  model->to(at::kBFloat16);
  recording_observer observer;
  forward_options options;
  options.observer = &observer;
  for (const bool observed : {false, true}) {
    const auto output = run_case(*model, "case1", observed ? options : forward_options{});
    CHECK(output.scalar_type() == at::kBFloat16);
    const double difference = (output.to(at::kFloat) - reference).norm().item().toDouble();
    const double relative = difference / reference.norm().item().toDouble();
    INFO("observer " << observed << ": relative L2 difference to float32 " << relative);
    CHECK(relative < 5e-2);
  }
  REQUIRE(observer.lse.size() == 3);
  CHECK(observer.q[0].scalar_type() == at::kBFloat16);
  CHECK(observer.lse[0].scalar_type() == at::kFloat);
  require_near(observer.lse[0], io("case1.attn_lse_all.block0"), 5e-2, "bf16 lse block0");
}

namespace {

/// Runs case1 through the module in float16 on `device`: a float16 output within 1e-2 (relative
/// L2) of the float32 reference.
void check_float16(const at::Device& device) {
  const auto model = fixture_transformer();
  const auto reference = run_case(*model, "case1");
  model->to(device, at::kHalf);
  at::NoGradGuard no_grad;
  const auto output = model->forward(io("case1.input.hidden_states").to(device),
                                     io("case1.input.encoder_hidden_states").to(device),
                                     io("case1.input.pooled_projections").to(device),
                                     io("case1.input.timestep").to(device));  // [B, C, H, W]
  CHECK(output.scalar_type() == at::kHalf);
  const auto difference = output.to(at::kCPU, at::kFloat) - reference;  // [B, C, H, W]
  const double relative = difference.norm().item().toDouble() / reference.norm().item().toDouble();
  INFO("relative L2 difference to float32 " << relative);
  CHECK(relative < 1e-2);
}

}  // namespace

// Registered only where LibTorch is 2.x or later (mmdit/CMakeLists.txt): 1.13's CPU kernels lack
// float16 matmul and LayerNorm.
TEST_CASE("dtype: a float16 module on the CPU runs and stays close to float32",
          "[sd35][mmdit][dtype][float16_cpu]") {
  INFO("LibTorch " TORCH_VERSION);
  REQUIRE(star::test::has_float16_kernels(at::kCPU));
  check_float16(at::Device(at::kCPU));
}

// Registered only with -DSTAR_ENABLE_CUDA_TESTS=ON and a LibTorch with CUDA, under the ctest
// label cuda (mmdit/CMakeLists.txt).
TEST_CASE("dtype: a float16 module on CUDA runs and stays close to float32",
          "[sd35][mmdit][dtype][cuda]") {
  INFO("LibTorch " TORCH_VERSION);
  REQUIRE(torch::cuda::is_available());
  check_float16(at::Device(at::kCUDA));
}

TEST_CASE("autograd: parameter gradients are the same with and without the observer",
          "[sd35][mmdit][autograd]") {
  const auto model = fixture_transformer();
  const auto gradients = [&](attention_observer* observer) {
    model->zero_grad();
    forward_options options;
    options.observer = observer;
    model
        ->forward(io("case1.input.hidden_states"), io("case1.input.encoder_hidden_states"),
                  io("case1.input.pooled_projections"), io("case1.input.timestep"), options)
        .pow(2)
        .sum()
        .backward();
    std::map<std::string, at::Tensor> out;
    for (const auto& item : model->named_parameters())
      if (item.value().grad().defined()) out[item.key()] = item.value().grad().clone();
    return out;
  };
  const auto plain = gradients(nullptr);
  recording_observer observer;
  const auto observed = gradients(&observer);
  REQUIRE(observer.q.size() == 3);
  CHECK_FALSE(observer.q[0].requires_grad());
  CHECK_FALSE(observer.k[0].requires_grad());
  CHECK_FALSE(observer.lse[0].requires_grad());
  REQUIRE(plain.size() == model->named_parameters().size());
  REQUIRE(observed.size() == plain.size());
  for (const auto& [name, gradient] : plain) {
    INFO(name);
    // The last block's text queries feed nothing (its text output is dropped): zero gradient.
    const bool unused = name.starts_with("transformer_blocks.2.attn.add_q_proj.") ||
                        name == "transformer_blocks.2.attn.norm_added_q.weight";
    CHECK((gradient.abs().max().item().toDouble() > 0.0) != unused);
    require_near(observed.at(name), gradient,
                 1e-4 * (1.0 + gradient.abs().max().item().toDouble()), name);
  }
}

TEST_CASE("errors: wrong input shapes name the argument", "[sd35][mmdit][errors]") {
  const auto model = fixture_transformer();
  const auto hidden = io("case1.input.hidden_states");        // [2, 16, 8, 8]
  const auto text = io("case1.input.encoder_hidden_states");  // [2, 12, 32]
  const auto pooled = io("case1.input.pooled_projections");   // [2, 24]
  const auto timestep = io("case1.input.timestep");           // [2]
  const auto rejects = [&](const at::Tensor& h, const at::Tensor& t, const at::Tensor& p,
                           const at::Tensor& s, const std::string& argument) {
    INFO(argument);
    REQUIRE_THROWS_AS(model->forward(h, t, p, s), star::error);
    REQUIRE_THROWS_WITH(model->forward(h, t, p, s), Catch::Contains(argument));
  };
  rejects(hidden[0], text, pooled, timestep, "hidden_states");
  rejects(hidden.slice(1, 0, 4), text, pooled, timestep, "hidden_states");
  rejects(hidden.slice(2, 0, 7), text, pooled, timestep, "hidden_states");
  rejects(at::zeros({2, 16, 34, 8}), text, pooled, timestep, "hidden_states");  // > 16 tokens
  rejects(at::Tensor(), text, pooled, timestep, "hidden_states");
  rejects(hidden, text.slice(2, 0, 31), pooled, timestep, "encoder_hidden_states");
  rejects(hidden, text[0], pooled, timestep, "encoder_hidden_states");
  rejects(hidden, text.slice(0, 0, 1), pooled, timestep, "encoder_hidden_states");
  rejects(hidden, text, pooled.slice(1, 0, 23), timestep, "pooled_projections");
  rejects(hidden, text, pooled, timestep.slice(0, 0, 1), "timestep");
  rejects(hidden, text, pooled, timestep.unsqueeze(0), "timestep");
}
