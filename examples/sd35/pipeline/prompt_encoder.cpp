#include "sd35/pipeline/prompt_encoder.hpp"

#include <ATen/ATen.h>

#include "star/core/error.hpp"

namespace star::sd35 {
namespace {

/// [B, S] int64 ids on `device` from B rows of equal length S.
at::Tensor id_batch(const std::vector<std::vector<std::int64_t>>& rows, at::Device device) {
  const auto length = static_cast<std::int64_t>(rows.front().size());
  auto ids = at::empty({static_cast<std::int64_t>(rows.size()), length}, at::kLong);  // [B, S]
  for (std::size_t b = 0; b < rows.size(); ++b)
    std::copy(rows[b].begin(), rows[b].end(),
              ids[static_cast<std::int64_t>(b)].data_ptr<std::int64_t>());
  return ids.to(device);  // [B, S]
}

}  // namespace

std::vector<segment_tokenization> tokenize_prompt(const sd35_model& model,
                                                  const std::string& prompt) {
  return model.tokenizers->tokenize(prompt).tokenizations;
}

encoded_prompts encode_prompts(const sd35_model& model, std::span<const std::string> prompts,
                               std::int64_t grid_h, std::int64_t grid_w) {
  if (prompts.empty()) throw value_error("prompts: expected at least one prompt, got none");
  at::NoGradGuard no_grad;
  encoded_prompts out;
  std::vector<std::vector<std::int64_t>> clip_l_ids, clip_g_ids, t5_ids;
  for (const auto& prompt : prompts) {
    auto tokens = model.tokenizers->tokenize(prompt);
    out.prompts.push_back(prompt);
    clip_l_ids.push_back(std::move(tokens.clip_l_ids));
    clip_g_ids.push_back(std::move(tokens.clip_g_ids));
    t5_ids.push_back(std::move(tokens.t5_ids));
    out.tokenizations.push_back(std::move(tokens.tokenizations));
  }
  const auto device = model.options.device;
  const auto clip_l = model.clip_l->forward(id_batch(clip_l_ids, device));
  const auto clip_g = model.clip_g->forward(id_batch(clip_g_ids, device));
  t5_encoder_output t5;
  if (model.has_t5()) {
    t5 = model.t5->forward(id_batch(t5_ids, device));
  } else {
    const auto batch = static_cast<std::int64_t>(prompts.size());
    t5.last_hidden_state = at::zeros(
        {batch, model.options.t5_length, model.transformer->config().joint_attention_dim},
        at::TensorOptions(model.options.dtype).device(device));  // [B, Lt, Dj]
  }
  out.embedding =
      assemble_sd3_prompt(sd3_text_features::from(clip_l, clip_g, t5), grid_h, grid_w);
  return out;
}

}  // namespace star::sd35
