#pragma once
/// @file
/// @brief Tokenising one prompt for SD3: the ids of the text encoders and the segment
/// tokenizations of `star::token_layout::sd3(h, w, Lt)`. T5 is optional: SD3 runs without
/// `text_encoder_3` (its `Lt` positions are then zeros), and so do these tokenizers.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

#include "sd35/tokenizers/clip_bpe.hpp"
#include "sd35/tokenizers/t5_sentencepiece.hpp"
#include "star/core/token_layout.hpp"
#include "star/tokens/tokenization.hpp"

namespace star::sd35 {

/// @brief One prompt, tokenised for SD3's text encoders.
struct sd3_prompt_tokens {
  std::vector<std::int64_t> clip_l_ids;  ///< [77] `tokenizer` (pads with 49407)
  std::vector<std::int64_t> clip_g_ids;  ///< [77] `tokenizer_2` (pads with 0)
  std::vector<std::int64_t> t5_ids;      ///< [Lt] `tokenizer_3`; empty without T5
  /// @brief `{"clip" (77 positions, offsets of the CLIP-L tokenisation), "t5" (Lt)}` in the
  /// order of `token_layout::sd3`, "t5" only with T5; ready for `validate_tokenizations` and
  /// core-token selection on `sd3_tokenizers::layout`.
  std::vector<segment_tokenization> tokenizations;
};

/// @brief SD3's tokenizers: CLIP-L, CLIP-G and, optionally, T5. The prompt is normalised once
/// for both CLIP tokenizers; when they share one vocabulary (`from_model_folder` with
/// identical files) each word's BPE also runs once (the shared cache).
struct sd3_tokenizers {
  clip_bpe_tokenizer clip_l;       ///< `clip_tokenizer_options::clip_l()`
  clip_bpe_tokenizer clip_g;       ///< `clip_tokenizer_options::clip_g()`
  std::optional<t5_tokenizer> t5;  ///< segment "t5", `max_length` = `t5_length`; empty: no T5
  std::int64_t t5_length = 256;    ///< `Lt` of the layout, with or without T5

  /// @brief Loads `tokenizer/`, `tokenizer_2/` and, with `use_t5`, `tokenizer_3/` of an SD3.5
  /// download. When the two CLIP folders hold byte-identical vocab.json and merges.txt (as
  /// the release does) the vocabulary is read once and shared.
  /// @param t5_length  Lt: 256 (diffusers) or 128 (Flow-GRPO); >= 1
  /// @param use_t5     false: no T5 tokenizer (`tokenizer_3/` is not read)
  /// @throws value_error naming the sub-folder (e.g. "tokenizer_2 (CLIP-G)") and its missing or
  ///         malformed file; option_error naming `t5_length`
  static sd3_tokenizers from_model_folder(const std::filesystem::path& model_folder,
                                          std::int64_t t5_length = 256, bool use_t5 = true);

  /// @brief Throws `option_error` naming `clip_l`/`clip_g` when those are not framed to 77
  /// positions with segment "clip", `t5_length` when < 1, and `t5` when it has another segment
  /// than "t5" or another `max_length` than `t5_length`.
  void validate() const;

  /// @brief Tokenises one UTF-8 prompt (after `validate`).
  sd3_prompt_tokens tokenize(std::string_view prompt) const;

  /// @brief `token_layout::sd3(grid_h, grid_w, t5_length)`, the layout the tokenizations fit.
  token_layout layout(std::int64_t grid_h, std::int64_t grid_w) const;
};

}  // namespace star::sd35
