#pragma once
/// @file
/// @brief Tokenising one prompt for SD3: the ids of the three text encoders and the two
/// segment tokenizations of `star::token_layout::sd3(h, w, Lt)`.

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "sd35/tokenizers/clip_bpe.hpp"
#include "sd35/tokenizers/t5_sentencepiece.hpp"
#include "star/core/token_layout.hpp"
#include "star/tokens/tokenization.hpp"

namespace star::sd35 {

/// @brief One prompt, tokenised for SD3's three text encoders.
struct sd3_prompt_tokens {
  std::vector<std::int64_t> clip_l_ids;  ///< [77] `tokenizer` (pads with 49407)
  std::vector<std::int64_t> clip_g_ids;  ///< [77] `tokenizer_2` (pads with 0)
  std::vector<std::int64_t> t5_ids;      ///< [Lt] `tokenizer_3`
  /// @brief `{"clip" (77 positions, offsets of the CLIP-L tokenisation), "t5" (Lt)}`, in the
  /// order of `token_layout::sd3`, ready for `validate_tokenizations` and core-token selection.
  std::vector<segment_tokenization> tokenizations;
};

/// @brief SD3's three tokenizers.
struct sd3_tokenizers {
  clip_bpe_tokenizer clip_l;  ///< `clip_tokenizer_options::clip_l()`
  clip_bpe_tokenizer clip_g;  ///< `clip_tokenizer_options::clip_g()`
  t5_tokenizer t5;            ///< segment "t5", `max_length` = Lt

  /// @brief Loads `tokenizer/`, `tokenizer_2/` and `tokenizer_3/` of an SD3.5 download.
  /// @param t5_length  Lt: 256 (diffusers) or 128 (Flow-GRPO)
  static sd3_tokenizers from_model_folder(const std::filesystem::path& model_folder,
                                          std::int64_t t5_length = 256);

  /// @brief Tokenises one UTF-8 prompt. Throws `option_error` naming `clip_l`/`clip_g` when
  /// those are not framed to 77 positions with segment "clip", or `t5` without segment "t5".
  sd3_prompt_tokens tokenize(std::string_view prompt) const;

  /// @brief `token_layout::sd3(grid_h, grid_w, Lt)`, the layout the tokenizations fit.
  token_layout layout(std::int64_t grid_h, std::int64_t grid_w) const;
};

}  // namespace star::sd35
