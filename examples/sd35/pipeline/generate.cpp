#include "sd35/pipeline/generate.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <optional>
#include <string>

#include "star/core/error.hpp"

namespace star::sd35 {
namespace {

/// Forwards the rows `[offset, offset + count)` of each report to `inner` (the conditional
/// half of a CFG batch [negative, positive]).
class batch_rows_observer final : public attention_observer {
 public:
  batch_rows_observer(attention_observer& inner, std::int64_t offset, std::int64_t count)
      : inner_(inner), offset_(offset), count_(count) {}

  void on_joint_attention(int block, const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& lse, const token_layout& layout) override {
    const auto rows = [&](const at::Tensor& t) { return t.narrow(0, offset_, count_); };
    inner_.on_joint_attention(block, rows(q), rows(k), rows(lse), layout);  // [B, ...]
  }

 private:
  attention_observer& inner_;
  std::int64_t offset_;
  std::int64_t count_;
};

/// `rows` copies of `x` [1, ...] stacked as [rows, ...].
at::Tensor repeat_rows(const at::Tensor& x, std::int64_t rows) {
  std::vector<std::int64_t> times(static_cast<std::size_t>(x.dim()), 1);
  times[0] = rows;
  return x.repeat(times);  // [rows, ...]
}

}  // namespace

void generate_options::validate(const sd35_model& model) const {
  validate(image_geometry::of(model));
}

void generate_options::validate(const image_geometry& geometry) const {
  const auto require_side = [&geometry](const char* field, std::int64_t value) {
    if (const auto error = geometry.side_error(value))
      throw option_error(std::string("generate_options.") + field + ": " + *error);
  };
  require_side("height", height);
  require_side("width", width);
  if (steps < 1)
    throw option_error("generate_options.steps: expected >= 1, got " + std::to_string(steps));
  if (!(std::isfinite(guidance) && guidance >= 0.0))
    throw option_error("generate_options.guidance: expected a finite value >= 0, got " +
                       std::to_string(guidance));
  if (!(std::isfinite(noise_level) && noise_level >= 0.0))
    throw option_error("generate_options.noise_level: expected a finite value >= 0, got " +
                       std::to_string(noise_level));
}

generate_result generate(const sd35_model& model, std::span<const std::string> prompts,
                         const generate_options& options) {
  if (prompts.empty()) throw value_error("prompts: expected at least one prompt, got none");
  options.validate(model);
  at::NoGradGuard no_grad;
  const auto& config = model.transformer->config();
  const auto batch = static_cast<std::int64_t>(prompts.size());
  const std::int64_t latent_h = options.height / model.vae_scale_factor();
  const std::int64_t latent_w = options.width / model.vae_scale_factor();
  const std::int64_t grid_h = latent_h / config.patch_size;
  const std::int64_t grid_w = latent_w / config.patch_size;
  const bool cfg = options.guidance > 1.0;
  const bool sde = options.noise_level > 0.0;
  const auto device = model.options.device;

  generate_result result;
  result.conditioning = encode_prompts(model, prompts, grid_h, grid_w);
  auto text = result.conditioning.embedding.prompt_embeds;  // [B, L, Dj]
  auto pooled = result.conditioning.embedding.pooled;       // [B, Dp]
  if (cfg) {
    const std::string negative[] = {options.negative_prompt};
    const auto uncond = encode_prompts(model, negative, grid_h, grid_w).embedding;
    text = at::cat({repeat_rows(uncond.prompt_embeds, batch), text}, 0);  // [2B, L, Dj]
    pooled = at::cat({repeat_rows(uncond.pooled, batch), pooled}, 0);     // [2B, Dp]
  }

  std::optional<batch_rows_observer> conditional;
  forward_options forward;
  forward.text_segments = result.conditioning.embedding.layout.text_segments;
  if (options.observer) {
    forward.observer = options.observer;
    if (cfg) forward.observer = &conditional.emplace(*options.observer, batch, batch);
  }

  flow_match_euler_scheduler scheduler(model.scheduler);
  scheduler.set_timesteps(options.steps);
  auto generator = at::detail::createCPUGenerator(options.seed);
  const auto noise = [&] {
    return at::randn({batch, config.in_channels, latent_h, latent_w}, generator,
                     at::kFloat)
        .to(device);  // [B, C, h, w]
  };
  auto x = noise();  // [B, C, h, w]
  result.latents.push_back(x);
  std::vector<at::Tensor> step_log_probs;
  for (std::size_t k = 0; k < scheduler.num_steps(); ++k) {
    const auto model_input = cfg ? at::cat({x, x}, 0) : x;  // [B', C, h, w], B' = 2B with CFG
    const auto timestep = at::full({model_input.size(0)}, scheduler.timesteps()[k],
                                   at::TensorOptions(at::kFloat).device(device));  // [B']
    const auto v_all = model.transformer->forward(model_input, text, pooled, timestep, forward)
                           .to(at::kFloat);  // [B', C, h, w]
    auto v = v_all;                          // [B', C, h, w], [B, ...] after the CFG mix
    if (cfg) {
      const auto v_uncond = v_all.narrow(0, 0, batch);     // [B, C, h, w]
      const auto v_cond = v_all.narrow(0, batch, batch);   // [B, C, h, w]
      v = v_uncond + options.guidance * (v_cond - v_uncond);  // [B, C, h, w]
    }
    if (sde) {
      const auto step = scheduler.sde_step(v, k, x, noise(), options.noise_level);
      x = step.x_next;                                                     // [B, C, h, w]
      step_log_probs.push_back(step.log_prob.reshape({batch, -1}).mean(1));  // [B]
    } else {
      x = scheduler.step(v, k, x);  // [B, C, h, w]
    }
    result.latents.push_back(x);
  }
  if (sde) result.log_probs = at::stack(step_log_probs, 1);  // [B, K]
  result.images = to_image_0_1(model.vae.ptr()->decode(x)).to(at::kFloat);  // [B, 3, H, W]
  return result;
}

}  // namespace star::sd35
