#include "sd35/pipeline/model_folder.hpp"

#include <c10/core/ScalarType.h>

#include <algorithm>
#include <string>
#include <utility>

#include "sd35/safetensors/checkpoint.hpp"
#include "sd35/safetensors/load.hpp"
#include "star/core/error.hpp"

namespace star::sd35 {
namespace {

namespace fs = std::filesystem;

/// One component folder of the model and what the error messages call it.
struct component {
  fs::path dir;
  std::string name;  // e.g. "text_encoder_2 (CLIP-G)"

  std::string context() const {
    return "sd35_model: component " + name + " (" + dir.string() + ")";
  }

  /// Throws checkpoint_error naming the component unless `dir / file` (or `dir`) exists.
  void require(const fs::path& file = {}) const {
    const auto path = file.empty() ? dir : dir / file;
    if (!fs::exists(path))
      throw checkpoint_error(context() + ": missing " + (file.empty() ? "folder " : "file ") +
                             path.string());
  }

  /// Runs `load`, prefixing the component to any star error (same exception type).
  template <class Load>
  auto guarded(Load&& load) const {
    try {
      return load();
    } catch (const checkpoint_error& e) {
      throw checkpoint_error(context() + ": " + e.what());
    } catch (const option_error& e) {
      throw option_error(context() + ": " + e.what());
    } catch (const value_error& e) {
      throw value_error(context() + ": " + e.what());
    } catch (const shape_error& e) {
      throw shape_error(context() + ": " + e.what());
    }
  }
};

/// Loads `ckpt` strictly into `module`, floating tensors converted to `dtype` on the way;
/// `tied` = {alias, owner} may be absent when its owner was loaded (it is the same tensor).
/// Throws checkpoint_error with the report otherwise.
void load_strict(torch::nn::Module& module, const checkpoint& ckpt, at::ScalarType dtype,
                 const std::pair<std::string, std::string>& tied = {}) {
  auto report = load_into(module, ckpt, {.strict = false, .prefix = {}, .dtype = dtype});
  const auto& [alias, owner] = tied;
  if (!alias.empty() && std::erase(report.missing, alias) > 0 &&
      std::find(report.loaded.begin(), report.loaded.end(), owner) == report.loaded.end())
    report.missing.push_back(alias);
  if (!report.ok()) throw checkpoint_error(report.describe());
}

}  // namespace

void model_load_options::validate() const {
  if (!at::isFloatingType(dtype))
    throw option_error(std::string("model_load_options.dtype: expected a floating dtype, got ") +
                       c10::toString(dtype));
  if (t5_length < 1)
    throw option_error("model_load_options.t5_length: expected >= 1, got " +
                       std::to_string(t5_length));
}

std::int64_t sd35_model::vae_scale_factor() const {
  return vae->config().scale_factor();
}

sd35_model sd35_model::load(const fs::path& folder, const model_load_options& options) {
  options.validate();
  if (!fs::is_directory(folder))
    throw checkpoint_error("sd35_model: model folder not found: " + folder.string());
  const component transformer_dir{folder / "transformer", "transformer (MMDiT)"};
  const component vae_dir{folder / "vae", "vae"};
  const component clip_l_dir{folder / "text_encoder", "text_encoder (CLIP-L)"};
  const component clip_g_dir{folder / "text_encoder_2", "text_encoder_2 (CLIP-G)"};
  const component t5_dir{folder / "text_encoder_3", "text_encoder_3 (T5)"};
  const component tokenizer_l_dir{folder / "tokenizer", "tokenizer (CLIP-L)"};
  const component tokenizer_g_dir{folder / "tokenizer_2", "tokenizer_2 (CLIP-G)"};
  const component tokenizer_t5_dir{folder / "tokenizer_3", "tokenizer_3 (T5)"};
  const component scheduler_dir{folder / "scheduler", "scheduler"};
  const bool use_t5 = options.use_t5 && fs::exists(t5_dir.dir);

  // Every folder and config first, so a broken download fails before any weight is read.
  for (const auto* dir : {&transformer_dir, &vae_dir, &clip_l_dir, &clip_g_dir}) {
    dir->require();
    dir->require("config.json");
  }
  if (use_t5) {
    t5_dir.require("config.json");
    tokenizer_t5_dir.require("spiece.model");
  }
  for (const auto* dir : {&tokenizer_l_dir, &tokenizer_g_dir}) {
    dir->require("vocab.json");
    dir->require("merges.txt");
  }
  scheduler_dir.require("scheduler_config.json");

  sd35_model model;
  model.options = options;
  model.scheduler = scheduler_dir.guarded([&] {
    return flow_match_euler_config::from_file(scheduler_dir.dir / "scheduler_config.json");
  });
  model.tokenizers = component{folder, "tokenizers"}.guarded(
      [&] { return sd3_tokenizers::from_model_folder(folder, options.t5_length, use_t5); });

  // The weights are read as options.dtype; `to` then moves them to the device (and converts
  // only what the checkpoint did not hold).
  const auto place = [&](torch::nn::Module& module) {
    module.to(options.device, options.dtype);
    module.eval();
  };
  model.transformer = transformer_dir.guarded([&] {
    auto transformer = std::make_shared<sd3_transformer>(
        transformer_config::from_file(transformer_dir.dir / "config.json"));
    load_strict(*transformer, checkpoint::open(transformer_dir.dir), options.dtype);
    return transformer;
  });
  place(*model.transformer);
  model.vae = vae_dir.guarded([&] {
    vae_decoder vae(vae_config::from_file(vae_dir.dir));
    load_vae_decoder(vae, checkpoint::open(vae_dir.dir), options.dtype);
    return vae;
  });
  place(*model.vae);
  const auto load_clip = [&](const component& dir) {
    return dir.guarded([&] {
      clip_text_model clip(clip_text_config::from_file(dir.dir));
      load_strict(*clip, checkpoint::open(dir.dir), options.dtype);
      return clip;
    });
  };
  model.clip_l = load_clip(clip_l_dir);
  place(*model.clip_l);
  model.clip_g = load_clip(clip_g_dir);
  place(*model.clip_g);
  if (use_t5) {
    model.t5 = t5_dir.guarded([&] {
      t5_encoder t5(t5_encoder_config::from_file(t5_dir.dir));
      load_strict(*t5, checkpoint::open(t5_dir.dir), options.dtype,
                  t5_encoder_impl::tied_embedding_names());
      return t5;
    });
    place(*model.t5);
  }
  return model;
}

}  // namespace star::sd35
