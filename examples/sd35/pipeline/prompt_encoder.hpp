#pragma once
/// @file
/// @brief Prompts to SD3 conditioning: the three tokenizers, the three text encoders (T5 as
/// zeros when the model has none, as diffusers without `text_encoder_3`) and diffusers'
/// assembly, plus the per-prompt segment tokenizations that star's core-token selection reads.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sd35/pipeline/model_folder.hpp"
#include "sd35/text/prompt_embedding.hpp"
#include "star/core/token_layout.hpp"
#include "star/tokens/tokenization.hpp"

namespace star::sd35 {

/// @brief A batch of prompts, encoded.
struct encoded_prompts {
  std::vector<std::string> prompts;  ///< [B] the prompts, in batch order
  /// `prompt_embeds` [B, 77 + Lt, Dj], `pooled` [B, Dp] (model dtype and device) and the
  /// layout `h x w` image tokens, then `{"clip", 77}`, `{"t5", Lt}`.
  sd3_prompt_embedding embedding;
  /// [B] per prompt: the "clip" tokenization (CLIP-L offsets) and, with T5, the "t5" one;
  /// ready for `star::select_core_tokens(prompts[b], tokenizations[b], embedding.layout)`.
  std::vector<std::vector<segment_tokenization>> tokenizations;
};

/// @brief One prompt's segment tokenizations without running any encoder: "clip" (CLIP-L
/// offsets) and, when the model has T5, "t5"; they fit `token_layout::sd3(h, w, Lt)`.
std::vector<segment_tokenization> tokenize_prompt(const sd35_model& model,
                                                  const std::string& prompt);

/// @brief Encodes `prompts` as diffusers' `encode_prompt` does (no gradient).
/// @param model    a loaded model
/// @param prompts  [B] UTF-8 prompts, B >= 1 (empty strings allowed: the CFG negative)
/// @param grid_h   image token rows `h` of the layout (latent height / patch size)
/// @param grid_w   image token columns `w`
/// @throws star::value_error naming `prompts` when it is empty; option_error on a bad grid
encoded_prompts encode_prompts(const sd35_model& model, std::span<const std::string> prompts,
                               std::int64_t grid_h, std::int64_t grid_w);

}  // namespace star::sd35
