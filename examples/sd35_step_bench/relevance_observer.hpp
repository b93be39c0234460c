#pragma once
/// @file
/// @brief The observer of the "on" variant: what a STAR trainer does with each block's joint
/// attention, the relevance map of the selected text columns from the reported LSE, averaged
/// over the blocks of one forward by `star::lse_relevance_accumulator` (no host read-back per
/// block).

#include <ATen/ATen.h>

#include <utility>

#include "sd35/mmdit/attention_observer.hpp"
#include "star/attention/lse_relevance_accumulator.hpp"
#include "star/attention/text_selection.hpp"
#include "star/core/token_layout.hpp"
#include "star/torch/attention_lse.hpp"
#include "star/torch/backend.hpp"

namespace star::step_bench {

/// @brief Adds the relevance map of every reported block (float32) to a
/// `star::lse_relevance_accumulator` over all blocks (`star::libtorch::add_selected_block`).
class relevance_observer final : public sd35::attention_observer {
 public:
  /// @brief The mean of the blocks' relevance maps, on the LibTorch backend.
  using accumulator = star::lse_relevance_accumulator<libtorch::backend>;

  /// @param device     where the reported q, k and LSE live; the maps are computed there in
  ///                    float32
  /// @param selection  the text columns and weights of every block's map
  relevance_observer(at::Device device, text_selection selection)
      : backend_(device, at::kFloat), accumulator_(backend_, std::move(selection)) {}
  relevance_observer(const relevance_observer&) = delete;  // accumulator_ points at backend_
  relevance_observer& operator=(const relevance_observer&) = delete;

  /// @brief Adds block `block`'s relevance map [B, N] of the selected columns to the mean.
  void on_joint_attention(int block, const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& lse, const token_layout& layout) override {
    libtorch::add_selected_block(accumulator_, block, q, k, layout, lse);
  }

  /// @brief Starts a new forward.
  void reset() { accumulator_.clear(); }
  /// @brief The maps of the last forward: `blocks_added()` and their mean `result()` [B, N].
  const accumulator& relevance() const { return accumulator_; }
  /// @brief The text columns and weights of every block's map.
  const text_selection& selection() const { return accumulator_.selection(); }

 private:
  libtorch::backend backend_;
  accumulator accumulator_;
};

}  // namespace star::step_bench
