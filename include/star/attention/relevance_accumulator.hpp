#pragma once
/// @file
/// @brief The mean of per-block relevance maps over the blocks `Λ`, accumulated one block at
/// a time without keeping the maps.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "star/core/value_checks.hpp"
#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"

namespace star {

/// @brief Sums relevance maps [B, N] of the blocks in the filter `Λ` (all blocks when no
/// filter is given) and returns their mean. Keeps one [B, N] running sum. The backend
/// object must outlive the accumulator.
template <elementwise_backend B>
  requires reduction_backend<B>
class relevance_accumulator {
 public:
  using tensor = typename B::tensor;  ///< the backend's tensor type

  /// @param be            the backend the maps live on
  /// @param block_filter  `Λ`: the block indices to use (non-empty, each >= 0); unset = all
  explicit relevance_accumulator(const B& be,
                                 std::optional<std::set<std::int64_t>> block_filter = std::nullopt)
      : be_(&be), filter_(std::move(block_filter)) {
    if (!filter_) return;
    if (filter_->empty())
      throw option_error("block_filter: the set of blocks is empty, so no block could be added");
    if (*filter_->begin() < 0)
      throw option_error("block_filter: block indices must be >= 0, got " +
                         std::to_string(*filter_->begin()));
  }

  /// @brief Adds the map of block `block` when the filter admits it; every added map must
  /// have the shape of the first.
  /// @param block  the transformer block index, >= 0
  /// @param map    [B, N] the block's relevance map (`relevance_map`)
  /// @return       whether the map was added
  bool add(std::int64_t block, const tensor& map) {
    if (!admits(block)) return false;
    const shape map_shape = be_->shape_of(map);
    require_rank("map", map_shape, 2, "[B, N]");
    if (sum_) {
      require_shape("map", map_shape, be_->shape_of(*sum_), "[B, N] (the shape of the first map)");
      sum_ = be_->add(*sum_, map);  // [B, N]
    } else {
      sum_ = map;  // [B, N]
    }
    ++count_;
    return true;
  }

  /// @brief Whether the filter admits block `block` (every block when no filter is set).
  /// @param block  the transformer block index, >= 0 (else `value_error`)
  bool admits(std::int64_t block) const {
    if (block < 0)
      throw value_error("block: block indices must be >= 0, got " + std::to_string(block));
    return !filter_ || filter_->contains(block);
  }

  /// @brief Forgets the added maps (e.g. for the next forward); keeps the filter.
  void clear() {
    sum_.reset();
    count_ = 0;
  }

  /// @brief How many maps were added (blocks outside the filter are not counted).
  std::int64_t blocks_added() const { return count_; }

  /// @brief The mean of the added maps, [B, N]; throws `value_error` when none was added or
  /// when the mean is not finite (NaN or Inf in some block's `q`, `k` or `lse`).
  tensor result() const {
    if (!sum_)
      throw value_error("relevance_accumulator.result: no block was added" +
                        std::string(filter_ ? " (every block was outside block_filter)" : ""));
    auto mean = be_->mul(*sum_, 1.0 / static_cast<double>(count_));  // [B, N]
    detail::require_finite(*be_, mean, "relevance_accumulator.result");
    return mean;
  }

 private:
  const B* be_;
  std::optional<std::set<std::int64_t>> filter_;
  std::optional<tensor> sum_;
  std::int64_t count_ = 0;
};

}  // namespace star
