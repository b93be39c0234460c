// The SD3 pipeline end to end on a tiny random stack saved as a diffusers folder: loading
// through sd35_model::load (the release code path), prompt encoding, deterministic sampling
// (ODE and SDE), the attention observer, precise loader errors, and the star-generate binary.

#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#ifdef STAR_GENERATE_BINARY  // defined only where stb_image.h was found
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#endif

#include "run_command.hpp"
#include "sd35/pipeline/generate.hpp"
#include "sd35/pipeline/model_folder.hpp"
#include "sd35/pipeline/prompt_encoder.hpp"
#include "star/tokens/select_core_tokens.hpp"
#include "tiny_model.hpp"

namespace {

namespace fs = std::filesystem;
using namespace star::test::pipeline;
using star::sd35::generate_options;
using star::sd35::model_load_options;
using star::sd35::sd35_model;

model_load_options tiny_options() {
  model_load_options options;
  options.t5_length = t5_length;
  return options;
}

const sd35_model& tiny_model() {
  static const sd35_model model = sd35_model::load(tiny_model_folder(), tiny_options());
  return model;
}

generate_options tiny_generation(std::uint64_t seed) {
  generate_options options;
  options.height = 16;
  options.width = 16;
  options.steps = 3;
  options.seed = seed;
  return options;
}

/// Records every report: block, shapes and layout.
struct recording_observer final : star::sd35::attention_observer {
  struct report {
    int block;
    std::vector<std::int64_t> q, k, lse;
    star::token_layout layout;
    bool finite;
  };
  std::vector<report> reports;

  void on_joint_attention(int block, const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& lse, const star::token_layout& layout) override {
    reports.push_back({block, q.sizes().vec(), k.sizes().vec(), lse.sizes().vec(), layout,
                       lse.isfinite().all().item<bool>() && q.isfinite().all().item<bool>()});
  }
};

/// The message of the star::error that `load` throws, requiring its type to be `Error`.
template <class Error>
std::string load_error(const fs::path& folder) {
  try {
    sd35_model::load(folder, tiny_options());
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("sd35_model::load did not throw the expected error type");
  return {};
}

}  // namespace

TEST_CASE("sd35_model::load reads every component of a diffusers folder", "[sd35][pipeline]") {
  const auto& model = tiny_model();
  REQUIRE(model.transformer->config().num_layers == num_layers);
  REQUIRE(model.transformer->config().joint_attention_dim == t5_width);
  REQUIRE(model.has_t5() == tiny_has_t5);
  REQUIRE(model.tokenizers.has_value());
  REQUIRE(model.tokenizers->t5.has_value() == tiny_has_t5);
  REQUIRE(model.tokenizers->t5_length == t5_length);
  // tokenizer/ and tokenizer_2/ hold identical files: one vocabulary, read once.
  REQUIRE(model.tokenizers->clip_l.shares_vocabulary_with(model.tokenizers->clip_g));
  REQUIRE(model.vae_scale_factor() == 2);
  REQUIRE(model.scheduler.shift == 3.0);
  // The loaded weights are the saved ones.
  const auto ckpt = star::sd35::checkpoint::open(tiny_model_folder() / "transformer");
  const auto saved = ckpt.tensor("context_embedder.weight");
  REQUIRE(at::equal(model.transformer->context_embedder->weight, saved));
}

TEST_CASE("encode_prompts assembles [B, 77 + Lt, Dj] with the SD3 layout and tokenizations",
          "[sd35][pipeline]") {
  const auto& model = tiny_model();
  const std::vector<std::string> prompts{"a red apple", ""};
  const auto encoded = star::sd35::encode_prompts(model, prompts, 4, 4);
  const auto& embeds = encoded.embedding.prompt_embeds;
  REQUIRE(embeds.sizes() == at::IntArrayRef{2, 77 + t5_length, t5_width});
  REQUIRE(encoded.embedding.pooled.sizes() == at::IntArrayRef{2, pooled_width});
  REQUIRE(embeds.isfinite().all().item<bool>());
  // CLIP rows are [L (16) | G (20) | 0]; the T5 rows are T5's.
  REQUIRE(embeds.narrow(1, 0, 77).narrow(2, 36, t5_width - 36).abs().max().item<double>() == 0);
  REQUIRE((embeds.narrow(1, 77, t5_length).abs().max().item<double>() > 0) == tiny_has_t5);
  const auto& layout = encoded.embedding.layout;
  REQUIRE(layout.grid_h == 4);
  REQUIRE(layout.text_tokens() == 77 + t5_length);
  REQUIRE(encoded.tokenizations.size() == 2);
  REQUIRE(encoded.tokenizations[0].size() == (tiny_has_t5 ? 2u : 1u));
  // The tokenizations fit the layout: core-token selection runs on the prompt.
  const auto selection =
      star::select_core_tokens(prompts[0], encoded.tokenizations[0], layout);
  REQUIRE(selection.rule_used == star::selection_rule::content_words);
  REQUIRE(selection.selected_words == std::vector<std::string>{"red", "apple"});
  REQUIRE_THROWS_AS(star::sd35::encode_prompts(model, {}, 4, 4), star::value_error);
  REQUIRE_THROWS_WITH(star::sd35::encode_prompts(model, {}, 4, 4), Catch::Contains("prompts"));
}

TEST_CASE("generate: same seed gives a bit-identical image, another seed a different one",
          "[sd35][pipeline]") {
  const std::vector<std::string> prompts{"a red apple"};
  const auto first = star::sd35::generate(tiny_model(), prompts, tiny_generation(1));
  const auto again = star::sd35::generate(tiny_model(), prompts, tiny_generation(1));
  const auto other = star::sd35::generate(tiny_model(), prompts, tiny_generation(2));
  REQUIRE(first.images.sizes() == at::IntArrayRef{1, 3, 16, 16});
  REQUIRE(first.images.scalar_type() == at::kFloat);
  REQUIRE(first.images.min().item<double>() >= 0.0);
  REQUIRE(first.images.max().item<double>() <= 1.0);
  REQUIRE(at::equal(first.images, again.images));
  REQUIRE_FALSE(at::equal(first.images, other.images));
  REQUIRE(first.latents.size() == 4);
  REQUIRE(first.latents.front().sizes() == at::IntArrayRef{1, 16, 8, 8});
  REQUIRE_FALSE(first.log_probs.defined());
}

TEST_CASE("generate: guidance mixes the conditional and the empty-prompt velocities",
          "[sd35][pipeline]") {
  const std::vector<std::string> prompts{"a red apple"};
  auto plain = tiny_generation(3);
  plain.guidance = 1.0;  // no CFG batch
  auto guided = tiny_generation(3);
  guided.guidance = 4.5;
  const auto a = star::sd35::generate(tiny_model(), prompts, plain);
  const auto b = star::sd35::generate(tiny_model(), prompts, guided);
  REQUIRE(at::equal(a.latents.front(), b.latents.front()));  // same noise
  REQUIRE_FALSE(at::equal(a.latents.back(), b.latents.back()));
}

TEST_CASE("generate: the observer gets q, k, LSE of every block and step, conditional half",
          "[sd35][pipeline]") {
  const std::vector<std::string> prompts{"a red apple", "two dogs"};
  for (const double guidance : {1.0, 4.5}) {
    INFO("guidance " << guidance);
    recording_observer observer;
    auto options = tiny_generation(4);
    options.guidance = guidance;
    options.observer = &observer;
    star::sd35::generate(tiny_model(), prompts, options);
    REQUIRE(observer.reports.size() == static_cast<std::size_t>(num_layers * options.steps));
    const std::int64_t tokens = 16 + 77 + t5_length;
    for (std::size_t i = 0; i < observer.reports.size(); ++i) {
      const auto& r = observer.reports[i];
      REQUIRE(r.block == static_cast<int>(i % num_layers));
      REQUIRE(r.q == std::vector<std::int64_t>{2, num_heads, tokens, head_dim});
      REQUIRE(r.k == r.q);
      REQUIRE(r.lse == std::vector<std::int64_t>{2, num_heads, tokens});
      REQUIRE(r.finite);
      REQUIRE(r.layout.grid_h == 4);
      REQUIRE(r.layout.grid_w == 4);
      REQUIRE(r.layout.image_first);
      REQUIRE(r.layout.text_segments.size() == 2);
      REQUIRE(r.layout.text_segments[0].name == "clip");
      REQUIRE(r.layout.text_segments[0].length == 77);
      REQUIRE(r.layout.text_segments[1].name == "t5");
      REQUIRE(r.layout.text_segments[1].length == t5_length);
    }
  }
}

TEST_CASE("generate: the SDE returns [B, K] log-probs, deterministic for a seed",
          "[sd35][pipeline]") {
  const std::vector<std::string> prompts{"a red apple", "two dogs"};
  auto options = tiny_generation(5);
  options.noise_level = 0.7;
  const auto sde = star::sd35::generate(tiny_model(), prompts, options);
  const auto again = star::sd35::generate(tiny_model(), prompts, options);
  REQUIRE(sde.log_probs.sizes() == at::IntArrayRef{2, options.steps});
  REQUIRE(sde.log_probs.isfinite().all().item<bool>());
  REQUIRE(at::equal(sde.log_probs, again.log_probs));
  REQUIRE(at::equal(sde.images, again.images));
  REQUIRE(sde.latents.size() == static_cast<std::size_t>(options.steps + 1));
  options.noise_level = 0.0;
  const auto ode = star::sd35::generate(tiny_model(), prompts, options);
  REQUIRE(at::equal(ode.latents.front(), sde.latents.front()));
  REQUIRE_FALSE(at::equal(ode.latents.back(), sde.latents.back()));
}

TEST_CASE("generate rejects bad options naming the field", "[sd35][pipeline][errors]") {
  const std::vector<std::string> prompts{"a red apple"};
  auto options = tiny_generation(0);
  options.height = 18;  // not a multiple of 2 (vae) * 2 (patch)
  REQUIRE_THROWS_AS(star::sd35::generate(tiny_model(), prompts, options), star::option_error);
  REQUIRE_THROWS_WITH(star::sd35::generate(tiny_model(), prompts, options),
                      Catch::Contains("generate_options.height"));
  options = tiny_generation(0);
  options.steps = 0;
  REQUIRE_THROWS_WITH(star::sd35::generate(tiny_model(), prompts, options),
                      Catch::Contains("generate_options.steps"));
  options = tiny_generation(0);
  options.noise_level = -1.0;
  REQUIRE_THROWS_WITH(star::sd35::generate(tiny_model(), prompts, options),
                      Catch::Contains("generate_options.noise_level"));
  REQUIRE_THROWS_AS(star::sd35::generate(tiny_model(), {}, tiny_generation(0)), star::value_error);
}

TEST_CASE("generate rejects a side past the positional table, naming the largest in pixels",
          "[sd35][pipeline][errors]") {
  // 2 (vae) x 2 (patch) pixels a token, pos_embed_max_size 16 tokens: at most 64 pixels.
  const std::vector<std::string> prompts{"a red apple"};
  auto options = tiny_generation(0);
  options.width = 68;
  REQUIRE_THROWS_AS(star::sd35::generate(tiny_model(), prompts, options), star::option_error);
  REQUIRE_THROWS_WITH(star::sd35::generate(tiny_model(), prompts, options),
                      Catch::Contains("generate_options.width") &&
                          Catch::Contains("pixels in [4, 64]") && Catch::Contains("got 68"));
  options.width = 64;  // the largest side still generates
  REQUIRE(star::sd35::generate(tiny_model(), prompts, options).images.size(3) == 64);
}

TEST_CASE("without text_encoder_3 the T5 positions are zeros and sampling still runs",
          "[sd35][pipeline]") {
  const auto folder = tiny_model_copy("no_t5");
  fs::remove_all(folder / "text_encoder_3");
  fs::remove_all(folder / "tokenizer_3");
  const auto model = sd35_model::load(folder, tiny_options());
  REQUIRE_FALSE(model.has_t5());
  const std::vector<std::string> prompts{"a red apple"};
  const auto encoded = star::sd35::encode_prompts(model, prompts, 4, 4);
  REQUIRE(encoded.embedding.prompt_embeds.sizes() == at::IntArrayRef{1, 77 + t5_length, t5_width});
  REQUIRE(encoded.embedding.prompt_embeds.narrow(1, 77, t5_length).abs().max().item<double>() == 0);
  REQUIRE(encoded.tokenizations[0].size() == 1);
  REQUIRE(encoded.tokenizations[0][0].segment == "clip");
  // The CLIP offsets alone still place the words in the layout's text block.
  const auto selection =
      star::select_core_tokens(prompts[0], encoded.tokenizations[0], encoded.embedding.layout);
  REQUIRE(selection.selected_words == std::vector<std::string>{"red", "apple"});
  const auto result = star::sd35::generate(model, prompts, tiny_generation(1));
  REQUIRE(result.images.sizes() == at::IntArrayRef{1, 3, 16, 16});
}

TEST_CASE("sd35_model::load names the missing folder or file and its component",
          "[sd35][pipeline][errors]") {
  REQUIRE_THROWS_WITH(sd35_model::load(tiny_model_folder() / "nowhere"),
                      Catch::Contains("nowhere"));
  const auto folder = tiny_model_copy("missing_files");
  fs::remove(folder / "vae" / "config.json");
  auto message = load_error<star::sd35::checkpoint_error>(folder);
  CHECK_THAT(message, Catch::Contains("component vae") && Catch::Contains("config.json"));
  fs::copy_file(tiny_model_folder() / "vae" / "config.json", folder / "vae" / "config.json");
  fs::remove(folder / "text_encoder_2" / "model.safetensors");
  message = load_error<star::sd35::checkpoint_error>(folder);
  CHECK_THAT(message, Catch::Contains("text_encoder_2"));
  fs::remove_all(folder / "scheduler");
  message = load_error<star::sd35::checkpoint_error>(folder);
  CHECK_THAT(message, Catch::Contains("scheduler_config.json"));
}

TEST_CASE("sd35_model::load names the tokenizer sub-folder whose file is malformed",
          "[sd35][pipeline][errors]") {
  const auto folder = tiny_model_copy("bad_tokenizer_2");
  std::ofstream(folder / "tokenizer_2" / "vocab.json") << "[1, 2]";
  const auto message = load_error<star::value_error>(folder);
  CHECK_THAT(message, Catch::Contains("tokenizer_2 (CLIP-G)") && Catch::Contains("vocab.json"));
}

TEST_CASE("sd35_model::load names the component and tensor of a wrong shape",
          "[sd35][pipeline][errors]") {
  const auto folder = tiny_model_copy("wrong_shape");
  rewrite_weights(folder / "transformer" / "diffusion_pytorch_model.safetensors",
                  [](named_tensors& tensors) {
                    for (auto& [name, t] : tensors)
                      if (name == "context_embedder.weight") t = at::zeros({32, 41});
                  });
  const auto message = load_error<star::sd35::checkpoint_error>(folder);
  CHECK_THAT(message, Catch::Contains("transformer") && Catch::Contains("context_embedder.weight"));
}

TEST_CASE("sd35_model::load names the component and tensor of a wrong dtype",
          "[sd35][pipeline][errors]") {
  const auto folder = tiny_model_copy("wrong_dtype");
  rewrite_weights(folder / "text_encoder" / "model.safetensors", [](named_tensors& tensors) {
    for (auto& [name, t] : tensors)
      if (name == "text_projection.weight") t = t.to(at::kInt);
  });
  const auto message = load_error<star::sd35::checkpoint_error>(folder);
  CHECK_THAT(message, Catch::Contains("text_encoder (CLIP-L)") &&
                          Catch::Contains("text_projection.weight"));
}

TEST_CASE("sd35_model::load names the component and tensor that is missing",
          "[sd35][pipeline][errors]") {
  const auto folder = tiny_model_copy("missing_tensor");
  rewrite_weights(folder / "vae" / "diffusion_pytorch_model.safetensors",
                  [](named_tensors& tensors) {
                    std::erase_if(tensors, [](const auto& item) {
                      return item.first == "decoder.conv_in.weight";
                    });
                  });
  auto message = load_error<star::sd35::checkpoint_error>(folder);
  CHECK_THAT(message, Catch::Contains("vae") && Catch::Contains("conv_in.weight"));
  if (!tiny_has_t5) return;
  // T5's tied alias may be absent (as in the release), its owner may not.
  rewrite_weights(folder / "text_encoder_3" / "model.safetensors", [](named_tensors& tensors) {
    std::erase_if(tensors, [](const auto& item) { return item.first == "shared.weight"; });
  });
  fs::copy_file(tiny_model_folder() / "vae" / "diffusion_pytorch_model.safetensors",
                folder / "vae" / "diffusion_pytorch_model.safetensors",
                fs::copy_options::overwrite_existing);
  message = load_error<star::sd35::checkpoint_error>(folder);
  CHECK_THAT(message, Catch::Contains("text_encoder_3") && Catch::Contains("shared.weight"));
}

TEST_CASE("sd35_model::load names the component and a missing config key",
          "[sd35][pipeline][errors]") {
  const auto folder = tiny_model_copy("missing_key");
  auto config = read_json(folder / "text_encoder_2" / "config.json");
  config.erase("hidden_size");
  write_json(folder / "text_encoder_2" / "config.json", config);
  const auto message = load_error<star::option_error>(folder);
  CHECK_THAT(message, Catch::Contains("text_encoder_2") && Catch::Contains("hidden_size"));
}

#ifdef STAR_GENERATE_BINARY
namespace {

using star::test::star_generate;

/// Runs star-generate with `arguments`, requiring it to succeed (its output shown otherwise).
void require_star_generate(const std::string& arguments) {
  const auto result = star_generate(arguments);
  INFO(result.output);
  REQUIRE(result.status == 0);
}

/// The pixels of `path`, required to be a PNG of `size` x `size` RGB pixels.
std::vector<unsigned char> png_pixels(const fs::path& path, int size) {
  INFO(path);
  REQUIRE(fs::exists(path));
  int width = 0, height = 0, channels = 0;
  unsigned char* pixels = stbi_load(path.c_str(), &width, &height, &channels, 0);
  REQUIRE(pixels != nullptr);
  std::vector<unsigned char> out(pixels, pixels + width * height * channels);
  stbi_image_free(pixels);
  REQUIRE(width == size);
  REQUIRE(height == size);
  REQUIRE(channels == 3);
  return out;
}

/// Requires `path` to be a PNG of `size` x `size` RGB pixels that stb_image decodes.
void require_png(const fs::path& path, int size) { png_pixels(path, size); }

/// The largest difference of two images' pixel values.
int max_pixel_difference(const std::vector<unsigned char>& a,
                         const std::vector<unsigned char>& b) {
  REQUIRE(a.size() == b.size());
  int largest = 0;
  for (std::size_t i = 0; i < a.size(); ++i) largest = std::max(largest, std::abs(a[i] - b[i]));
  return largest;
}

}  // namespace

TEST_CASE("star-generate writes the images and the word attention overlays",
          "[sd35][pipeline][star-generate]") {
  const auto out = star::test::scratch_dir("generate_out");
  const auto model = tiny_model_folder();
  const std::string common = "--model " + model.string() + " --steps 2 --size 16 --seed 3 ";
  require_star_generate(common + "--prompt 'a red apple' --prompt 'two dogs' --out " +
                        (out / "content").string());
  require_png(out / "content" / "image_0.png", 16);
  require_png(out / "content" / "image_0_red.png", 16);
  require_png(out / "content" / "image_0_apple.png", 16);
  require_png(out / "content" / "image_1.png", 16);
  require_png(out / "content" / "image_1_dogs.png", 16);
  REQUIRE_FALSE(fs::exists(out / "content" / "image_0.png.partial"));

  require_star_generate(common + "--prompt 'a red apple' --words red --out " +
                        (out / "words").string());
  require_png(out / "words" / "image_0_red.png", 16);
  REQUIRE_FALSE(fs::exists(out / "words" / "image_0_apple.png"));
}

TEST_CASE("star-generate: a word's heat map is the same read out alone or with other words",
          "[sd35][pipeline][star-generate]") {
  // All words of all prompts are read out of each block at once, then split per word.
  const auto out = star::test::scratch_dir("generate_split");
  const std::string common = "--model " + tiny_model_folder().string() +
                             " --steps 2 --size 16 --seed 4 --prompt 'a red apple' "
                             "--prompt 'two dogs' ";
  require_star_generate(common + "--words red --out " + (out / "alone").string());
  require_star_generate(common + "--out " + (out / "together").string());
  REQUIRE(png_pixels(out / "alone" / "image_0.png", 16) ==
          png_pixels(out / "together" / "image_0.png", 16));
  const auto alone = png_pixels(out / "alone" / "image_0_red.png", 16);
  const auto together = png_pixels(out / "together" / "image_0_red.png", 16);
  CHECK(max_pixel_difference(alone, together) <= 1);
  CHECK(max_pixel_difference(together, png_pixels(out / "together" / "image_0_apple.png", 16)) >
        1);
  require_png(out / "together" / "image_1_dogs.png", 16);
  REQUIRE_FALSE(fs::exists(out / "alone" / "image_1_red.png"));
}

TEST_CASE("star-generate fails with exit code 1 and a message on a bad model folder",
          "[sd35][pipeline][star-generate][errors]") {
  const auto out = star::test::scratch_dir("generate_bad");
  const auto folder = tiny_model_copy("bad_for_cli");
  fs::remove(folder / "transformer" / "config.json");
  const auto result = star_generate("--model " + folder.string() +
                                    " --prompt apple --size 16 --out " +
                                    (out / "images").string());
  REQUIRE(result.status == 1);
  CHECK_THAT(result.output, Catch::Contains("transformer") && Catch::Contains("config.json"));
  REQUIRE_FALSE(fs::exists(out / "images" / "image_0.png"));
}

TEST_CASE("star-generate: a --size the model cannot take fails before any weight is read",
          "[sd35][pipeline][star-generate][errors]") {
  // The tiny model: 2 (vae) x 2 (patch) pixels a token, at most 16 tokens a side: 64 pixels.
  const auto out = star::test::scratch_dir("generate_too_large");
  const auto folder = tiny_model_copy("too_large_for_cli");
  fs::remove(folder / "transformer" / "diffusion_pytorch_model.safetensors");  // not read
  for (const auto* size : {"80", "18"}) {
    INFO("--size " << size);
    const auto result = star_generate("--model " + folder.string() +
                                      " --prompt apple --size " + size + " --out " +
                                      (out / "images").string());
    CHECK(result.status == 2);
    CHECK_THAT(result.output,
               Catch::Contains("--size: expected a multiple of 4 pixels in [4, 64]") &&
                   Catch::Contains("got " + std::string(size)) && !Catch::Contains("safetensors"));
  }
  CHECK_FALSE(fs::exists(out / "images"));
}
#endif
