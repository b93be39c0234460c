#pragma once
/// @file
/// @brief Group-relative advantages (docs/math.md §1): each reward minus its group's mean,
/// over a global or per-group population std, clipped; on host values or a backend tensor.
///
/// Exactness across ranks (invariant I6): every statistic is a sum taken over the values
/// sorted ascending (a canonical order), so it depends only on the multiset of rewards, not
/// on how the samples were split over ranks or in which order they arrived. Rewards split over
/// any number of ranks therefore give bitwise the same advantages as one process.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <ranges>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "star/advantage/advantage_options.hpp"
#include "star/advantage/reward_gather.hpp"
#include "star/core/backend.hpp"
#include "star/core/error.hpp"

namespace star {

/// @brief This rank's advantages and the epoch statistics a trainer logs.
struct advantage_result {
  std::vector<double> advantages;     ///< [B] this rank's advantages; exactly 0 when dropped
  std::vector<std::size_t> dropped;   ///< this rank's indices whose reward was dropped
  std::size_t kept_samples = 0;       ///< samples of the epoch (all ranks) in the statistics
  std::size_t group_count = 0;        ///< groups with at least one kept sample (all ranks)
  std::size_t zero_variance_groups = 0;  ///< of those, groups whose rewards are all equal
  double reward_mean = 0.0;           ///< mean of the kept rewards of the epoch (0 if none)
  double reward_std = 0.0;            ///< their population std (0 if none)
};

namespace detail {

/// @brief Population mean and std of `values` summed in ascending order, and whether all
/// values are equal. `values` must be non-empty and finite.
struct population_moments {
  double mean = 0.0;
  double std = 0.0;
  bool constant = true;
};

inline population_moments canonical_moments(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const auto count = static_cast<double>(values.size());
  double sum = 0.0;
  for (const double v : values) sum += v;
  const double mean = sum / count;
  double squares = 0.0;
  for (const double v : values) squares += (v - mean) * (v - mean);
  return {mean, std::sqrt(squares / count), values.front() == values.back()};
}

/// @brief Names gathered sample `index` for an error message: by its local index when it is
/// one of the caller's samples, else by its rank and index there where the gather says where
/// each rank's samples start.
template <class Key>
std::string describe_sample(std::size_t index, const gathered_rewards<Key>& all,
                            std::size_t local_count) {
  if (index >= all.local_offset && index < all.local_offset + local_count)
    return "rewards[" + std::to_string(index - all.local_offset) + "]";
  const auto& starts = all.rank_offsets;  // a hook's own offsets: used only when ascending
  const auto past = std::is_sorted(starts.begin(), starts.end())
                        ? std::upper_bound(starts.begin(), starts.end(), index)
                        : starts.begin();
  if (past == starts.begin())
    return "gathered sample " + std::to_string(index) + " (held by another rank)";
  const auto rank = static_cast<std::size_t>(past - starts.begin()) - 1;
  return "rank " + std::to_string(rank) + "'s rewards[" + std::to_string(index - starts[rank]) +
         "]";
}

}  // namespace detail

/// @brief Group-relative advantages of this rank's samples:
/// `A = clip((r - mean_group) / (std + eps_std), -clip_max, clip_max)`, population std
/// (ddof 0) in double, over the epoch (`std_scope::global`) or the group. A group whose kept
/// rewards are all equal gets `A = 0` exactly, whatever the scope.
///
/// The statistics are computed after `gather`, over all ranks' samples; every rank then
/// checks the same gathered rewards, so a non-finite reward under `nonfinite_policy::error`
/// throws on every rank alike (the message names the sample: `rewards[i]` when it is local).
/// The options and shapes are checked after `gather` too, so that every rank takes part in
/// each collective (`process_group_gather` fails on all ranks when one has mismatched keys).
/// @param rewards [B] this rank's rewards (B may be 0)
/// @param keys    [B] the group key of each reward (a prompt string, an id, ...)
/// @param options std scope, eps, clip, non-finite policy (validated)
/// @param gather  the all-gather hook (`single_process_gather` for one process)
template <std::ranges::contiguous_range Keys, class Gather = single_process_gather>
  requires reward_gather<Gather, std::ranges::range_value_t<Keys>>
advantage_result group_relative_advantages(std::span<const double> rewards, const Keys& keys,
                                           const advantage_options& options = {},
                                           const Gather& gather = {}) {
  using key_type = std::ranges::range_value_t<Keys>;
  const std::span<const key_type> local_keys(std::ranges::data(keys), std::ranges::size(keys));
  // the gather comes first (it checks one key per reward): a rank that threw before it
  // would leave the others waiting and, if the trainer went on, pair its next call with
  // their current one
  const gathered_rewards<key_type> all = gather.gather(rewards, local_keys);
  if (all.keys.size() != all.rewards.size() ||
      all.local_offset + rewards.size() > all.rewards.size())
    throw shape_error("group_relative_advantages: gather returned " +
                      std::to_string(all.rewards.size()) + " rewards, " +
                      std::to_string(all.keys.size()) + " keys and local_offset " +
                      std::to_string(all.local_offset) + " for rewards of shape [" +
                      std::to_string(rewards.size()) + "] and keys of shape [" +
                      std::to_string(local_keys.size()) + "]");
  if (local_keys.size() != rewards.size())
    throw mismatched_keys_error("group_relative_advantages", "rewards", rewards.size(), "keys",
                                local_keys.size());
  options.validate();

  // Group every kept sample of the epoch; dropped samples belong to no group.
  constexpr std::size_t no_group = std::numeric_limits<std::size_t>::max();
  std::unordered_map<key_type, std::size_t> group_index;
  std::vector<std::vector<double>> group_rewards;
  std::vector<std::size_t> group_of(all.rewards.size(), no_group);
  std::vector<double> kept;
  for (std::size_t i = 0; i < all.rewards.size(); ++i) {
    const double r = all.rewards[i];
    if (!std::isfinite(r)) {
      if (options.nonfinite == nonfinite_policy::error)
        throw value_error("group_relative_advantages: " +
                          detail::describe_sample(i, all, rewards.size()) +
                          " is " + std::to_string(r) +
                          "; rewards must be finite (or set advantage_options.nonfinite = "
                          "nonfinite_policy::drop)");
      continue;
    }
    const auto [it, inserted] = group_index.try_emplace(all.keys[i], group_rewards.size());
    if (inserted) group_rewards.emplace_back();
    group_rewards[it->second].push_back(r);
    group_of[i] = it->second;
    kept.push_back(r);
  }

  advantage_result result;
  result.kept_samples = kept.size();
  result.group_count = group_rewards.size();
  if (!kept.empty()) {
    const auto epoch = detail::canonical_moments(std::move(kept));
    result.reward_mean = epoch.mean;
    result.reward_std = epoch.std;
  }
  std::vector<detail::population_moments> groups;
  groups.reserve(group_rewards.size());
  for (auto& members : group_rewards) {
    groups.push_back(detail::canonical_moments(std::move(members)));
    if (groups.back().constant) ++result.zero_variance_groups;
  }

  result.advantages.assign(rewards.size(), 0.0);
  for (std::size_t local = 0; local < rewards.size(); ++local) {
    const std::size_t group = group_of[all.local_offset + local];
    if (group == no_group) {
      result.dropped.push_back(local);
      continue;
    }
    const auto& stats = groups[group];
    const double denominator =
        (options.scope == std_scope::global ? result.reward_std : stats.std) + options.eps_std;
    if (stats.constant || !(denominator > 0.0)) continue;  // exactly 0
    result.advantages[local] = std::clamp((rewards[local] - stats.mean) / denominator,
                                          -options.clip_max, options.clip_max);
  }
  return result;
}

/// @brief The same advantages for rewards held in a backend tensor. Rewards are data (never
/// differentiated), so they are read to the host once; use the host overload for the logged
/// statistics. A `rewards` tensor that is not 1-D throws before the gather, on its rank
/// alone (a program error, not data: it fails the same way on every rank that runs it).
/// @param be      the backend
/// @param rewards [B] this rank's rewards
/// @param keys    [B] the group key of each reward
/// @param options std scope, eps, clip, non-finite policy (validated)
/// @param gather  the all-gather hook (`single_process_gather` for one process)
/// @return        [B] this rank's advantages (0 for dropped samples)
template <tensor_backend B, std::ranges::contiguous_range Keys,
          class Gather = single_process_gather>
  requires reward_gather<Gather, std::ranges::range_value_t<Keys>>
typename B::tensor group_relative_advantages(const B& be, const typename B::tensor& rewards,
                                             const Keys& keys,
                                             const advantage_options& options = {},
                                             const Gather& gather = {}) {
  const shape rewards_shape = be.shape_of(rewards);
  require_rank("rewards", rewards_shape, 1, "[B]");
  const std::vector<double> host_rewards = be.to_host(rewards);
  const auto result = group_relative_advantages(std::span<const double>(host_rewards), keys,
                                                options, gather);
  return be.from_host(result.advantages, rewards_shape);  // [B]
}

}  // namespace star
