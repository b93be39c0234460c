#pragma once
/// @file
/// @brief SD3.5's T5 tokenizer (`tokenizer_3/spiece.model`) through libsentencepiece, with
/// per-piece byte offsets into the prompt.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "star/tokens/tokenization.hpp"

namespace star::sd35 {

/// @brief How the T5 tokenizer frames its ids.
struct t5_tokenizer_options {
  std::int64_t max_length = 256;  ///< pieces (truncated to max_length-1) + EOS, padded; >= 1.
                                  ///< diffusers' default 256; Flow-GRPO uses 128
  std::string segment = "t5";     ///< segment name of the tokenization

  /// @brief Throws `option_error` naming `max_length` or `segment`.
  void validate() const;
};

/// @brief One tokenised prompt.
struct t5_tokens {
  std::vector<std::int64_t> input_ids;       ///< [max_length] pieces, EOS, padding
  std::vector<std::int64_t> attention_mask;  ///< [max_length] 1 for pieces and EOS
  std::int64_t num_tokens = 0;               ///< pieces + EOS, <= max_length
  std::int64_t untruncated_content_tokens = 0;  ///< pieces of the whole prompt
  /// @brief Every position `[0, max_length)`: pieces carry the prompt bytes SentencePiece
  /// aligned them to; EOS and padding are `special`.
  segment_tokenization tokenization;
};

/// @brief T5's SentencePiece (unigram) tokenizer, as `T5TokenizerFast(padding="max_length",
/// truncation=True)`: no BOS, `</s>` appended, padded with `<pad>`. Copies share the model.
/// The ids are SentencePiece's own (`EncodeAsImmutableProto`, libsentencepiece >= 0.1.97); the
/// fast tokenizer's tokenizer.json replicates them for ordinary text (there is no T5 tokenizer
/// fixture to confirm it). Offsets are SentencePiece's piece-to-input byte alignment.
class t5_tokenizer {
 public:
  /// @brief Whether this build has SentencePiece; without it every load throws `star::error`.
  static bool available();
  /// @brief Loads a SentencePiece model file. Throws `value_error` naming a missing or
  /// unreadable file, or a model without an EOS or pad id.
  static t5_tokenizer from_file(const std::filesystem::path& spiece_model,
                                const t5_tokenizer_options& options = {});
  /// @brief Loads `folder/spiece.model` (an SD3.5 download's `tokenizer_3/`).
  static t5_tokenizer from_folder(const std::filesystem::path& folder,
                                  const t5_tokenizer_options& options = {});

  /// @brief Tokenises one UTF-8 prompt.
  t5_tokens encode(std::string_view prompt) const;
  /// @brief The text of `ids`, leaving out padding and EOS; throws `value_error` naming
  /// `ids` for an id outside the vocabulary.
  std::string decode(std::span<const std::int64_t> ids) const;

  std::int64_t eos_id() const;      ///< `</s>` (1 for T5)
  std::int64_t pad_id() const;      ///< `<pad>` (0 for T5)
  /// pieces of the model: 32000 for T5's spiece.model (transformers' 32100 adds the 100
  /// `<extra_id_*>` sentinel tokens, which are not pieces of the model)
  std::int64_t vocab_size() const;
  /// @brief The options the tokenizer was loaded with.
  const t5_tokenizer_options& options() const;

 private:
  struct model;
  t5_tokenizer(std::shared_ptr<const model> shared, t5_tokenizer_options options);
  std::shared_ptr<const model> model_;
  t5_tokenizer_options options_;
};

}  // namespace star::sd35
