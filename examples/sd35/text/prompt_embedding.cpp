#include "sd35/text/prompt_embedding.hpp"

#include <string>
#include <utility>

#include "sd35/text/text_layers.hpp"
#include "star/core/shape.hpp"

namespace star::sd35 {
namespace {

/// @brief Throws unless `t` has the batch, dtype and device of `reference` (both named).
void require_same_batch_and_type(const at::Tensor& t, const std::string& name,
                                 const at::Tensor& reference, const std::string& reference_name) {
  if (t.size(0) != reference.size(0))
    throw star::shape_error(name + ": batch " + std::to_string(t.size(0)) + " " +
                            star::to_string(t.sizes().vec()) + " differs from " +
                            reference_name + "'s " + std::to_string(reference.size(0)) + " " +
                            star::to_string(reference.sizes().vec()));
  if (t.scalar_type() != reference.scalar_type() || t.device() != reference.device())
    throw star::value_error(name + ": dtype/device " + c10::toString(t.scalar_type()) + " on " +
                            t.device().str() + " differs from " + reference_name + "'s " +
                            c10::toString(reference.scalar_type()) + " on " +
                            reference.device().str());
}

}  // namespace

sd3_text_features sd3_text_features::from(const clip_text_output& clip_l,
                                          const clip_text_output& clip_g,
                                          const t5_encoder_output& t5) {
  return {clip_l.penultimate_hidden_state, clip_g.penultimate_hidden_state, clip_l.text_embeds,
          clip_g.text_embeds, t5.last_hidden_state};
}

sd3_prompt_embedding assemble_sd3_prompt(const sd3_text_features& features,
                                         std::int64_t grid_h, std::int64_t grid_w) {
  const auto& t5 = features.t5_hidden;
  text_detail::require_defined(t5, "t5_hidden", "[B, Lt, Ct]");
  star::require_rank("t5_hidden", t5.sizes().vec(), 3, "[B, Lt, Ct]");
  const std::pair<const at::Tensor*, const char*> hidden[] = {
      {&features.clip_l_hidden, "clip_l_hidden"}, {&features.clip_g_hidden, "clip_g_hidden"}};
  const std::pair<const at::Tensor*, const char*> pooled[] = {
      {&features.clip_l_pooled, "clip_l_pooled"}, {&features.clip_g_pooled, "clip_g_pooled"}};
  for (const auto& [tensor, name] : hidden) {
    text_detail::require_defined(*tensor, name, "[B, Sc, C]");
    star::require_rank(name, tensor->sizes().vec(), 3, "[B, Sc, C]");
    require_same_batch_and_type(*tensor, name, t5, "t5_hidden");
  }
  for (const auto& [tensor, name] : pooled) {
    text_detail::require_defined(*tensor, name, "[B, P]");
    star::require_rank(name, tensor->sizes().vec(), 2, "[B, P]");
    require_same_batch_and_type(*tensor, name, t5, "t5_hidden");
  }
  const auto& clip_l = features.clip_l_hidden;
  const auto& clip_g = features.clip_g_hidden;
  if (clip_l.size(1) != clip_g.size(1))
    throw star::shape_error(
        "clip_g_hidden: sequence length " + star::to_string(clip_g.sizes().vec()) +
        " differs from clip_l_hidden's " + star::to_string(clip_l.sizes().vec()));
  const auto clip_width = clip_l.size(2) + clip_g.size(2);
  if (clip_width > t5.size(2))
    throw star::shape_error("clip_l_hidden, clip_g_hidden: widths " +
                            star::to_string(clip_l.sizes().vec()) + " + " +
                            star::to_string(clip_g.sizes().vec()) + " exceed the T5 width of " +
                            "t5_hidden " + star::to_string(t5.sizes().vec()));

  auto layout = star::token_layout::sd3(grid_h, grid_w, t5.size(1));
  layout.text_segments.front().length = clip_l.size(1);
  layout.validate();

  const auto clip = at::cat({clip_l, clip_g}, -1);                          // [B, Sc, Cl+Cg]
  const auto clip_padded = at::constant_pad_nd(clip, {0, t5.size(2) - clip_width});  // [B, Sc, Ct]
  return {at::cat({clip_padded, t5}, 1),                                      // [B, Sc+Lt, Ct]
          at::cat({features.clip_l_pooled, features.clip_g_pooled}, -1),      // [B, Pl+Pg]
          std::move(layout)};
}

}  // namespace star::sd35
