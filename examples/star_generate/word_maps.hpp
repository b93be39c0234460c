#pragma once
/// @file
/// @brief The words whose attention star-generate draws, and the observer that sums their maps:
/// each block's read-out of every selected text column through star's LSE path.

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sd35/mmdit/attention_observer.hpp"
#include "star/torch.hpp"

namespace star::generate_cli {

/// @brief One word of one prompt: the text columns it weights.
struct word_map {
  std::string word;                ///< as given, or a content word of the prompt
  star::text_selection selection;  ///< its columns and weights in the joint sequence
};

/// @brief The words to map in `prompt`: `words` when given, else its content words; each mapped
/// to its own columns through star's explicit-word selection. A given word that is not a word of
/// the prompt is reported on stderr and left out.
/// @param prompt         the prompt, UTF-8
/// @param tokenizations  the prompt's tokenizations, fitting `layout`
/// @param layout         the joint sequence of the model at the image size
/// @param words          the words asked for (`--words`), or none
std::vector<word_map> select_words(const std::string& prompt,
                                   const std::vector<star::segment_tokenization>& tokenizations,
                                   const star::token_layout& layout,
                                   const std::vector<std::string>& words);

/// @brief Sums each word's relevance map (star::relevance_map: the head mean of the attention
/// probabilities, weighted over the word's columns) over every block and step of the
/// conditional batch. Each block is read out once: the probabilities of every column that any
/// word of any prompt selects, for the whole batch
/// (star::libtorch::selected_attention_probabilities), then one batched product with the word
/// weights, uploaded once.
class word_map_observer final : public sd35::attention_observer {
 public:
  /// @param maps    per prompt, its words
  /// @param device  where the blocks' q and k live
  word_map_observer(const std::vector<std::vector<word_map>>& maps, at::Device device);

  /// @brief Adds this block's map of every word of every prompt.
  void on_joint_attention(int block, const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& lse, const star::token_layout& layout) override;

  /// @brief Word `m` of prompt `b` summed over every block and step: [N] float32; undefined
  /// when no block was observed.
  at::Tensor map(std::size_t b, std::size_t m) const;

 private:
  /// Where `column` (a selected one) sits in `columns_`.
  std::int64_t position_in_columns(std::int64_t column) const;

  star::libtorch::backend backend_;
  std::vector<std::int64_t> columns_;  // [S] every selected column, ascending
  at::Tensor weights_;                 // [B, S, W] float32, each word's weights in its column
  at::Tensor sums_;                    // [B, N, W] the maps summed so far
};

}  // namespace star::generate_cli
