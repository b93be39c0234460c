#pragma once
/// @file
/// @brief SD3 prompt assembly (diffusers `encode_prompt`): CLIP-L and CLIP-G features side by
/// side, zero-padded to the T5 width, followed by the T5 sequence; pooled = both CLIP
/// projections; plus the joint attention's token layout.

#include <ATen/ATen.h>

#include <cstdint>

#include "sd35/text/clip_text_model.hpp"
#include "sd35/text/t5_encoder.hpp"
#include "star/core/token_layout.hpp"

namespace star::sd35 {

/// @brief The encoder outputs SD3 assembles (widths are read from the tensors).
struct sd3_text_features {
  at::Tensor clip_l_hidden;  ///< [B, Sc, Cl] CLIP-L penultimate_hidden_state (768 real)
  at::Tensor clip_g_hidden;  ///< [B, Sc, Cg] CLIP-G penultimate_hidden_state (1280 real)
  at::Tensor clip_l_pooled;  ///< [B, Pl] CLIP-L text_embeds (768 real)
  at::Tensor clip_g_pooled;  ///< [B, Pg] CLIP-G text_embeds (1280 real)
  at::Tensor t5_hidden;      ///< [B, Lt, Ct] T5 last_hidden_state (Ct = 4096, Lt = 256 real)

  /// @brief Picks the fields SD3 uses out of the three encoders' outputs.
  static sd3_text_features from(const clip_text_output& clip_l, const clip_text_output& clip_g,
                                const t5_encoder_output& t5);
};

/// @brief The assembled conditioning of one batch of prompts.
struct sd3_prompt_embedding {
  at::Tensor prompt_embeds;  ///< [B, Sc + Lt, Ct]: rows [L | G | 0] for CLIP, then T5
  at::Tensor pooled;         ///< [B, Pl + Pg]: [CLIP-L | CLIP-G] (2048 real)
  star::token_layout layout; ///< image grid h x w first, then {"clip", Sc}, {"t5", Lt}
};

/// @brief Assembles SD3's `encoder_hidden_states` and `pooled_projections`.
/// @param features  the five encoder outputs; batch B, the CLIP length Sc, dtype and device
///                  must agree, and Cl + Cg <= Ct
/// @param grid_h    image token rows h (latent height / patch size)
/// @param grid_w    image token columns w
/// @throws star::shape_error naming the field on a wrong rank, batch, length or width;
///         star::value_error on mixed dtypes or devices; star::option_error on a bad grid
sd3_prompt_embedding assemble_sd3_prompt(const sd3_text_features& features,
                                         std::int64_t grid_h, std::int64_t grid_w);

}  // namespace star::sd35
