#pragma once
// A tiny random SD3 stack written as a diffusers-layout folder (the layout of a real release):
// tiny CLIP-L / CLIP-G with the tokenizer tests' tiny vocabulary, a tiny T5 with a freshly
// trained SentencePiece model, a tiny MMDiT-X and a two-level VAE decoder, saved through
// save_safetensors, and the config JSON files.

#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sd35/mmdit/transformer.hpp"
#include "sd35/safetensors/checkpoint.hpp"
#include "sd35/safetensors/load.hpp"
#include "sd35/text/clip_text_model.hpp"
#include "sd35/text/t5_encoder.hpp"
#include "sd35/vae/decoder.hpp"
#include "tokenizer_fixtures.hpp"

namespace star::test::pipeline {

namespace fs = std::filesystem;
using named_tensors = std::vector<std::pair<std::string, at::Tensor>>;

/// The tiny stack's sizes: CLIP widths 16 + 20 <= the T5 width 40 = joint_attention_dim;
/// pooled 12 + 16 = 28 = pooled_projection_dim.
constexpr std::int64_t t5_width = 40;
constexpr std::int64_t pooled_width = 28;
constexpr std::int64_t num_layers = 2;
constexpr std::int64_t num_heads = 2;
constexpr std::int64_t head_dim = 16;
constexpr std::int64_t t5_length = 16;  // the `t5_length` the tests load with

inline void write_json(const fs::path& path, const nlohmann::json& json) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << json.dump(1);
}

inline nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

/// Every parameter and buffer of `module` except `skip`, by state-dict name.
inline named_tensors state_of(const torch::nn::Module& module,
                              const std::set<std::string>& skip = {}) {
  named_tensors out;
  for (const auto& item : module.named_parameters())
    if (!skip.count(item.key())) out.emplace_back(item.key(), item.value().detach());
  for (const auto& item : module.named_buffers())
    if (!skip.count(item.key())) out.emplace_back(item.key(), item.value().detach());
  return out;
}

/// Reads `file`, lets `edit` change the tensors, writes them back.
inline void rewrite_weights(const fs::path& file, const std::function<void(named_tensors&)>& edit) {
  named_tensors tensors;
  {
    const auto ckpt = star::sd35::checkpoint::open(file);
    for (const auto& name : ckpt.names()) tensors.emplace_back(name, ckpt.tensor(name));
  }
  edit(tensors);
  star::sd35::save_safetensors(file, tensors);
}

inline nlohmann::json transformer_json() {
  return {{"_class_name", "SD3Transformer2DModel"},
          {"sample_size", 8},
          {"patch_size", 2},
          {"in_channels", 16},
          {"num_layers", num_layers},
          {"attention_head_dim", head_dim},
          {"num_attention_heads", num_heads},
          {"joint_attention_dim", t5_width},
          {"caption_projection_dim", num_heads * head_dim},
          {"pooled_projection_dim", pooled_width},
          {"out_channels", 16},
          {"pos_embed_max_size", 16},
          {"dual_attention_layers", {0}},
          {"qk_norm", "rms_norm"}};
}

inline nlohmann::json clip_json(std::int64_t vocab, std::int64_t hidden, std::int64_t heads,
                                std::int64_t projection, const std::string& act) {
  return {{"architectures", {"CLIPTextModelWithProjection"}},
          {"vocab_size", vocab},
          {"hidden_size", hidden},
          {"intermediate_size", 2 * hidden},
          {"num_hidden_layers", 2},
          {"num_attention_heads", heads},
          {"max_position_embeddings", 77},
          {"projection_dim", projection},
          {"hidden_act", act},
          {"layer_norm_eps", 1e-5},
          {"eos_token_id", 2}};
}

inline nlohmann::json t5_json() {
  return {{"architectures", {"T5EncoderModel"}}, {"vocab_size", 128}, {"d_model", t5_width},
          {"d_kv", 8}, {"d_ff", 48}, {"num_layers", 2}, {"num_heads", 4},
          {"feed_forward_proj", "gated-gelu"}, {"layer_norm_epsilon", 1e-6}};
}

inline nlohmann::json vae_json() {
  return {{"_class_name", "AutoencoderKL"},
          {"in_channels", 3},
          {"out_channels", 3},
          {"down_block_types", {"DownEncoderBlock2D", "DownEncoderBlock2D"}},
          {"up_block_types", {"UpDecoderBlock2D", "UpDecoderBlock2D"}},
          {"block_out_channels", {8, 16}},
          {"layers_per_block", 1},
          {"act_fn", "silu"},
          {"latent_channels", 16},
          {"norm_num_groups", 4},
          {"sample_size", 16},
          {"scaling_factor", 1.5305},
          {"shift_factor", 0.0609},
          {"latents_mean", nullptr},
          {"latents_std", nullptr},
          {"force_upcast", true},
          {"use_quant_conv", false},
          {"use_post_quant_conv", false},
          {"mid_block_add_attention", true}};
}

/// Whether the tiny model has T5 (`text_encoder_3/`, `tokenizer_3/`): only when SentencePiece
/// can train its tokenizer here (in a helper process, see train_tiny_spiece.cpp).
#ifdef STAR_TRAIN_TINY_SPIECE
constexpr bool tiny_has_t5 = true;
#else
constexpr bool tiny_has_t5 = false;
#endif

/// Writes the tiny model into `root` (random weights from a fixed torch seed).
inline void write_tiny_model(const fs::path& root) {
  at::manual_seed(7);
  const auto clip_vocab = write_tiny_clip_vocab(root / "tokenizer");
  write_tiny_clip_vocab(root / "tokenizer_2");
  const auto vocab = static_cast<std::int64_t>(clip_vocab.ids.size());

  const auto save = [&](const std::string& dir, const std::string& file,
                        const nlohmann::json& config, const named_tensors& tensors) {
    write_json(root / dir / "config.json", config);
    star::sd35::save_safetensors(root / dir / file, tensors);
  };
  const auto transformer_config = transformer_json();
  star::sd35::sd3_transformer transformer(
      star::sd35::transformer_config::from_json(transformer_config.dump()));
  save("transformer", "diffusion_pytorch_model.safetensors", transformer_config,
       state_of(transformer));

  const auto vae_config = vae_json();
  star::sd35::vae_decoder vae(star::sd35::vae_config::from_json(vae_config.dump()));
  save("vae", "diffusion_pytorch_model.safetensors", vae_config, state_of(*vae));

  const auto clip_l_config = clip_json(vocab, 16, 2, 12, "quick_gelu");
  star::sd35::clip_text_model clip_l(
      star::sd35::clip_text_config::from_json(clip_l_config.dump(), "clip_l"));
  save("text_encoder", "model.safetensors", clip_l_config, state_of(*clip_l));
  const auto clip_g_config = clip_json(vocab, 20, 4, 16, "gelu");
  star::sd35::clip_text_model clip_g(
      star::sd35::clip_text_config::from_json(clip_g_config.dump(), "clip_g"));
  save("text_encoder_2", "model.safetensors", clip_g_config, state_of(*clip_g));

#ifdef STAR_TRAIN_TINY_SPIECE
  fs::create_directories(root / "tokenizer_3");
  const std::string train = std::string(STAR_TRAIN_TINY_SPIECE) + " '" +
                            (root / "tokenizer_3" / "spiece.model").string() + "'";
  REQUIRE(std::system(train.c_str()) == 0);
  // As the release: only `shared.weight`, not its tied alias.
  const auto t5_config = t5_json();
  star::sd35::t5_encoder t5(star::sd35::t5_encoder_config::from_json(t5_config.dump(), "t5"));
  save("text_encoder_3", "model.safetensors", t5_config,
       state_of(*t5, {star::sd35::t5_encoder_impl::tied_embedding_names().first}));
#endif

  write_json(root / "scheduler" / "scheduler_config.json",
             {{"_class_name", "FlowMatchEulerDiscreteScheduler"},
              {"num_train_timesteps", 1000},
              {"shift", 3.0}});
}

/// The tiny model folder of this process (written once).
inline const fs::path& tiny_model_folder() {
  static const fs::path folder = [] {
    const auto dir = scratch_dir("tiny_sd3");
    write_tiny_model(dir);
    return dir;
  }();
  return folder;
}

/// A fresh copy of the tiny model in `name`, for tests that break one file.
inline fs::path tiny_model_copy(const std::string& name) {
  const auto dir = scratch_dir(name);
  fs::copy(tiny_model_folder(), dir,
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  return dir;
}

}  // namespace star::test::pipeline
