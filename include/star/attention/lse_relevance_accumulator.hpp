#pragma once
/// @file
/// @brief The mean relevance map over the blocks `Λ` of one forward, computed block by block
/// from `q`, `k` and the row log-sum-exp of a fused attention kernel (docs/math.md §3),
/// without a host read-back per block.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "star/attention/options.hpp"
#include "star/attention/probabilities.hpp"
#include "star/attention/relevance.hpp"
#include "star/attention/relevance_accumulator.hpp"
#include "star/attention/text_selection.hpp"
#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"
#include "star/core/token_layout.hpp"
#include "star/core/value_checks.hpp"

namespace star {

/// @brief `relevance_accumulator` fed with each block's `q`, `k` and LSE instead of its map:
/// `add` adds `block_relevance(q, k, layout, selection, lse, options)` of the blocks in `Λ`.
///
/// Built for a trainer observing every block of a forward, on a device: the weights of the
/// selected columns are uploaded once (here), and `add` reads nothing back to the host. So the
/// LSE is not checked for finiteness per block (that check is a device-to-host copy): a NaN or
/// an Inf in some block's `lse` turns its map into NaN, which reaches the mean, and `result()`
/// throws `value_error` for it, once per forward. The backend object must outlive the
/// accumulator. `add` takes the image rows' LSE [B, H, N]; with the LSE of every row
/// [B, H, T] (e.g. `libtorch::attention_with_lse`) on LibTorch, use
/// `libtorch::add_selected_block`.
template <complete_backend B>
class lse_relevance_accumulator {
 public:
  using tensor = typename B::tensor;  ///< the backend's tensor type

  /// @param be            the backend the maps live on
  /// @param selection     the text columns `S` (non-empty) and their weights (finite, >= 0)
  /// @param options       the logit scale; the direction must be `image_to_text`
  /// @param block_filter  `Λ`: the block indices to use (non-empty, each >= 0); unset = all
  lse_relevance_accumulator(const B& be, text_selection selection,
                            const attention_options& options = {},
                            std::optional<std::set<std::int64_t>> block_filter = std::nullopt)
      : be_(&be),
        maps_(be, std::move(block_filter)),
        selection_(checked(std::move(selection))),
        options_(checked(options)),
        weight_column_(be.from_host(
            selection_.weights,
            {static_cast<std::int64_t>(selection_.weights.size()), 1})) {}  // [S, 1]

  /// @brief Adds the map of block `block` from the joint `q`, `k` when the filter admits it.
  /// Checks shapes only (no host read-back of values).
  /// @param block   the transformer block index, >= 0
  /// @param q       [B, H, T, D] post-QK-norm queries of the joint sequence
  /// @param k       [B, H, T, D] post-QK-norm keys
  /// @param layout  where the image and text tokens sit in `T`; holds the selected columns
  /// @param lse     [B, H, N] log-sum-exp of each image query's row over ALL keys
  /// @return        whether the map was added
  bool add(std::int64_t block, const tensor& q, const tensor& k, const token_layout& layout,
           const tensor& lse) {
    if (!maps_.admits(block)) return false;
    const auto rows = attention_detail::gather_image_text_rows(
        *be_, q, k, layout, selection_.indices, "selection.indices");
    return add_selected_rows(block, rows.q_image, rows.k_selected, lse);
  }

  /// @brief Adds the map of block `block` from the image queries and the keys of the selected
  /// columns, gathered by the caller (e.g. in a model's storage dtype, converting only these
  /// rows), when the filter admits it. Checks shapes only.
  /// @param block       the transformer block index, >= 0
  /// @param q_image     [B, H, N, D] post-QK-norm queries of the image tokens
  /// @param k_selected  [B, H, S, D] keys of `selection().indices`, in that order
  /// @param lse         [B, H, N] log-sum-exp of each image query's row over ALL keys
  /// @return            whether the map was added
  bool add_selected_rows(std::int64_t block, const tensor& q_image, const tensor& k_selected,
                         const tensor& lse) {
    if (!maps_.admits(block)) return false;
    const std::int64_t head_dim =
        attention_detail::check_image_to_text_rows(*be_, q_image, k_selected, lse);
    const auto selected = static_cast<std::int64_t>(selection_.indices.size());
    if (be_->shape_of(k_selected)[2] != selected)
      throw shape_error("k_selected: expected S = " + std::to_string(selected) +
                        " selected columns in [B, H, S, D], got shape " +
                        to_string(be_->shape_of(k_selected)));
    // lse + 0 * lse is lse where finite and NaN where not: an LSE of +Inf would otherwise
    // give probabilities of 0, a finite map that result() could not tell from a real one.
    const auto lse_or_nan = be_->add(lse, be_->mul(lse, 0.0));  // [B, H, N]
    const auto probabilities = attention_detail::image_to_text_from_lse(
        *be_, q_image, k_selected, lse_or_nan, options_.scale_for(head_dim));  // [B, H, N, S]
    return maps_.add(block, attention_detail::weighted_head_mean(*be_, probabilities,
                                                                 weight_column_));  // [B, N]
  }

  /// @brief Whether the filter admits block `block` (`value_error` when `block < 0`).
  bool admits(std::int64_t block) const { return maps_.admits(block); }
  /// @brief Forgets the added maps (e.g. for the next forward); keeps the uploaded weights.
  void clear() { maps_.clear(); }
  /// @brief How many maps were added (blocks outside the filter are not counted).
  std::int64_t blocks_added() const { return maps_.blocks_added(); }
  /// @brief The mean of the added maps, [B, N]; throws `value_error` when none was added or
  /// when the mean is not finite (NaN or Inf in some block's `q`, `k` or `lse`).
  tensor result() const { return maps_.result(); }
  /// @brief The text columns and weights of every block's map.
  const text_selection& selection() const { return selection_; }
  /// @brief The backend the maps live on.
  const B& backend() const { return *be_; }

 private:
  static text_selection checked(text_selection selection) {
    if (selection.indices.empty())
      throw value_error("selection.indices: the selection of text columns is empty");
    if (selection.weights.size() != selection.indices.size())
      throw shape_error("selection.weights: expected shape [S] = [" +
                        std::to_string(selection.indices.size()) + "] (one per index), got [" +
                        std::to_string(selection.weights.size()) + "]");
    detail::require_finite_nonnegative("selection.weights", selection.weights);
    return selection;
  }

  static attention_options checked(const attention_options& options) {
    options.validate();
    attention_detail::require_image_to_text(options, "lse_relevance_accumulator");
    return options;
  }

  const B* be_;
  relevance_accumulator<B> maps_;
  text_selection selection_;
  attention_options options_;
  tensor weight_column_;  // [S, 1] selection_.weights
};

}  // namespace star
