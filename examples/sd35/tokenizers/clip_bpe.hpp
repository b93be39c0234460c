#pragma once
/// @file
/// @brief CLIP's byte-level BPE tokenizer (SD3.5's `tokenizer/` and `tokenizer_2/`), with
/// per-token byte offsets into the original prompt.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sd35/tokenizers/clip_text.hpp"
#include "star/tokens/tokenization.hpp"

namespace star::sd35 {

/// @brief How a CLIP tokenizer frames and pads its ids.
struct clip_tokenizer_options {
  std::int64_t max_length = 77;             ///< BOS + at most max_length-2 ids + EOS, padded; >= 2
  std::string pad_token = "<|endoftext|>";  ///< a vocabulary token; any other than
                                            ///< `<|startoftext|>` / `<|endoftext|>` is also split
                                            ///< out of the prompt as a special added token
  std::string segment = "clip";             ///< segment name of the tokenization

  /// @brief SD3's `tokenizer` (CLIP-L): pads with `<|endoftext|>` (49407).
  static clip_tokenizer_options clip_l() { return {}; }
  /// @brief SD3's `tokenizer_2` (CLIP-G): pads with `!` (id 0), and, as transformers does for
  /// a special token, every literal `!` of the prompt becomes id 0 too.
  static clip_tokenizer_options clip_g() { return {77, "!", "clip"}; }

  /// @brief Throws `option_error` naming `max_length`, `pad_token` or `segment`.
  void validate() const;
};

/// @brief One tokenised prompt.
struct clip_tokens {
  std::vector<std::int64_t> input_ids;       ///< [max_length] BOS, ids, EOS, padding
  std::vector<std::int64_t> attention_mask;  ///< [max_length] 1 for BOS..EOS, 0 for padding
  std::int64_t num_tokens = 0;               ///< BOS..EOS, <= max_length
  std::int64_t untruncated_content_tokens = 0;  ///< ids of the whole prompt, before truncation
  std::string normalized_text;               ///< the text BPE ran on (see clip_text.hpp)
  std::vector<char_span> normalized_spans;   ///< [num_tokens - 2] bytes of normalized_text
                                             ///< behind each content token
  /// @brief Every position `[0, max_length)`: content tokens carry their prompt bytes; BOS,
  /// EOS, padding and literal `<|startoftext|>`/`<|endoftext|>` are `special`.
  segment_tokenization tokenization;
};

/// @brief CLIP's BPE tokenizer: `clip_normalize`, `clip_pretokenize`, bytes to unicode, BPE
/// merges by rank with `</w>` ending each word (cached per word), vocabulary ids, framing.
/// Copies and `with_options` share the vocabulary and the cache; `encode` is thread-safe.
class clip_bpe_tokenizer {
 public:
  /// @brief Loads `folder/vocab.json` and `folder/merges.txt` (an SD3.5 download's
  /// `tokenizer/` or `tokenizer_2/`). Throws `value_error` naming a missing or malformed file.
  static clip_bpe_tokenizer from_folder(const std::filesystem::path& folder,
                                        const clip_tokenizer_options& options = {});
  /// @brief Loads a vocab.json (token -> id) and a merges.txt (`#version` header, then one
  /// `left right` pair per line in rank order; like transformers, at most the first 48894).
  static clip_bpe_tokenizer from_files(const std::filesystem::path& vocab_json,
                                       const std::filesystem::path& merges_txt,
                                       const clip_tokenizer_options& options = {});

  /// @brief This tokenizer's vocabulary, merges and BPE cache framed with `options` (nothing
  /// is read again): SD3's CLIP-G tokenizer over CLIP-L's files when the two are identical.
  /// Throws `option_error` as `clip_tokenizer_options::validate`, `value_error` naming a
  /// `pad_token` that is not in the vocabulary.
  clip_bpe_tokenizer with_options(const clip_tokenizer_options& options) const;
  /// @brief Whether this tokenizer and `other` share one loaded vocabulary and BPE cache.
  bool shares_vocabulary_with(const clip_bpe_tokenizer& other) const;

  /// @brief Tokenises one UTF-8 prompt: `encode(clip_normalize(prompt))`.
  clip_tokens encode(std::string_view prompt) const;
  /// @brief Tokenises a prompt already normalised by `clip_normalize` (which depends on no
  /// vocabulary or option), so that several tokenizers normalise a prompt once.
  clip_tokens encode(const clip_normalized_text& normalized) const;

  /// @brief The id of a vocabulary token; throws `value_error` naming it when unknown.
  std::int64_t token_id(std::string_view token) const;
  std::int64_t bos_id() const;  ///< `<|startoftext|>`
  std::int64_t eos_id() const;  ///< `<|endoftext|>`
  std::int64_t pad_id() const;  ///< `options().pad_token`
  /// @brief The options the tokenizer was loaded with.
  const clip_tokenizer_options& options() const;

 private:
  struct model;
  clip_bpe_tokenizer(std::shared_ptr<model> shared, clip_tokenizer_options options);
  std::shared_ptr<model> model_;
  clip_tokenizer_options options_;
  std::vector<std::string> added_tokens_;
  std::int64_t bos_id_ = 0;  // looked up once, at construction
  std::int64_t eos_id_ = 0;
  std::int64_t pad_id_ = 0;
};

/// @brief Whether the folders `a` and `b` hold byte-identical `vocab.json` and `merges.txt`
/// (as an SD3.5 download's `tokenizer/` and `tokenizer_2/` do); false when a file is missing.
bool same_vocabulary_files(const std::filesystem::path& a, const std::filesystem::path& b);

}  // namespace star::sd35
