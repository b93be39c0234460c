#pragma once
/// @file
/// @brief The hook that collects the rewards of every rank before the advantage statistics
/// are computed, so that a group spread over ranks is normalised as in one process (I6).

#include <concepts>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "star/core/error.hpp"

namespace star {

/// @brief A group identifier: a prompt string, an integer id, or any equality-comparable,
/// hashable, copyable type.
template <class Key>
concept group_key = std::equality_comparable<Key> && std::copy_constructible<Key> &&
                    requires(const Key& key) {
                      { std::hash<Key>{}(key) } -> std::convertible_to<std::size_t>;
                    };

/// @brief The rewards and group keys of all ranks, concatenated in rank order.
template <group_key Key>
struct gathered_rewards {
  std::vector<double> rewards;    ///< [all samples of the epoch] rank 0's first
  std::vector<Key> keys;          ///< [all samples of the epoch] one key per reward
  std::size_t local_offset = 0;   ///< where the calling rank's samples start
  /// [ranks] where each rank's samples start, ascending (for error messages; empty: unknown)
  std::vector<std::size_t> rank_offsets = {};
};

/// @brief A gather hook: `gather.gather(local_rewards, local_keys)` returns every rank's
/// rewards and keys in rank order and the offset of the caller's block. Every rank must
/// receive the same arrays (an all-gather). The statistics star computes from them do not
/// depend on the order of the samples, only on which samples there are.
/// star calls the hook before any check of its own, so that every rank takes part in each
/// collective: `local_rewards` and `local_keys` may differ in length, and the hook then throws
/// `shape_error` (a multi-rank hook on every rank, as `libtorch::process_group_gather` does).
template <class G, class Key>
concept reward_gather =
    group_key<Key> && requires(const G& gather, std::span<const double> local_rewards,
                               std::span<const Key> local_keys) {
      { gather.gather(local_rewards, local_keys) } -> std::same_as<gathered_rewards<Key>>;
    };

/// @brief The error of rewards and keys of different lengths, e.g.
/// `process_group_gather: local_rewards has shape [3] but local_keys has shape [2]; ...`.
/// @param where        who reports it
/// @param rewards_arg  the rewards' argument name
/// @param rewards      how many rewards
/// @param keys_arg     the keys' argument name
/// @param keys         how many keys
inline shape_error mismatched_keys_error(const char* where, const char* rewards_arg,
                                         std::size_t rewards, const char* keys_arg,
                                         std::size_t keys) {
  return shape_error(std::string(where) + ": " + rewards_arg + " has shape [" +
                     std::to_string(rewards) + "] but " + keys_arg + " has shape [" +
                     std::to_string(keys) + "]; expected one key per reward");
}

/// @brief The gather of a single process: the local samples are the whole epoch.
struct single_process_gather {
  /// @brief Returns the local samples, with offset 0; throws `shape_error` unless there is
  /// one key per reward.
  /// @param local_rewards  [B] this process's rewards
  /// @param local_keys     [B] their group keys
  template <group_key Key>
  gathered_rewards<Key> gather(std::span<const double> local_rewards,
                               std::span<const Key> local_keys) const {
    if (local_keys.size() != local_rewards.size())
      throw mismatched_keys_error("single_process_gather", "rewards", local_rewards.size(),
                                  "keys", local_keys.size());
    return {{local_rewards.begin(), local_rewards.end()},
            {local_keys.begin(), local_keys.end()},
            0};
  }
};

}  // namespace star
