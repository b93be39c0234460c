#pragma once
/// @file
/// @brief The selected text columns `S` of the attention maps and their weights.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "star/core/value_checks.hpp"
#include "star/core/error.hpp"
#include "star/core/nd_index.hpp"
#include "star/core/token_layout.hpp"

namespace star {

/// @brief Text-block indices `j in S` (0-based inside the text block, not the joint
/// sequence) and their weights `w_j`, in the same order.
struct text_selection {
  std::vector<std::int64_t> indices;  ///< [S] text-block positions
  std::vector<double> weights;        ///< [S] `w_j >= 0`
};

/// @brief Throws unless `indices` is a non-empty list of text-block positions of `layout`:
/// `value_error` when empty, `shape_error` (naming `arg`) when one is outside `[0, L)`.
inline void require_text_columns(std::string_view arg, std::span<const std::int64_t> indices,
                                 const token_layout& layout) {
  if (indices.empty())
    throw value_error(std::string(arg) + ": the selection of text columns is empty");
  require_indices(arg, indices, layout.text_tokens());
}

/// @brief The nonzero entries of a text weight vector, in text order.
/// @param w       [L] weights over the text block, finite and >= 0, at least one > 0
/// @param layout  the joint token layout (gives `L`)
inline text_selection select_text_columns(std::span<const double> w, const token_layout& layout) {
  layout.validate();
  if (static_cast<std::int64_t>(w.size()) != layout.text_tokens())
    throw shape_error("w: expected shape [L] = [" + std::to_string(layout.text_tokens()) +
                      "], got [" + std::to_string(w.size()) + "]");
  detail::require_finite_nonnegative("w", w);
  text_selection selection;
  for (std::size_t j = 0; j < w.size(); ++j)
    if (w[j] > 0.0) {
      selection.indices.push_back(static_cast<std::int64_t>(j));
      selection.weights.push_back(w[j]);
    }
  if (selection.indices.empty())
    throw value_error("w: no entry is > 0, so no text column is selected");
  return selection;
}

}  // namespace star
