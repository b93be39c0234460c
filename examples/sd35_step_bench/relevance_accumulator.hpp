#pragma once
/// @file
/// @brief The observer of the "on" variant: what a STAR trainer does with each block's joint
/// attention, the relevance map of the selected text columns from the reported LSE, summed over
/// the blocks of one forward.

#include <ATen/ATen.h>

#include <utility>

#include "sd35/mmdit/attention_observer.hpp"
#include "star/attention/text_selection.hpp"
#include "star/core/token_layout.hpp"
#include "star/torch/attention_lse.hpp"
#include "star/torch/backend.hpp"

namespace star::step_bench {

/// @brief Sums `star::libtorch::selected_block_relevance` over the reported blocks (float32).
class relevance_accumulator final : public sd35::attention_observer {
 public:
  relevance_accumulator(at::Device device, text_selection selection)
      : backend_(device, at::kFloat), selection_(std::move(selection)) {}

  void on_joint_attention(int /*block*/, const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& lse, const token_layout& layout) override {
    const auto relevance = libtorch::selected_block_relevance(backend_, q, k, layout, selection_,
                                                              lse);  // [B, N]
    sum_ = sum_.defined() ? sum_ + relevance : relevance;  // [B, N]
    ++blocks_;
  }

  /// @brief Starts a new forward.
  void reset() {
    sum_ = at::Tensor();  // undefined until the first block
    blocks_ = 0;
  }
  /// @brief [B, N] the sum over the blocks of the last forward.
  const at::Tensor& sum() const { return sum_; }
  /// @brief Blocks reported in the last forward.
  int blocks() const { return blocks_; }
  /// @brief The text columns and weights of every block's map.
  const text_selection& selection() const { return selection_; }

 private:
  libtorch::backend backend_;
  text_selection selection_;
  at::Tensor sum_;  // [B, N]
  int blocks_ = 0;
};

}  // namespace star::step_bench
