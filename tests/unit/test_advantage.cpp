// Group-relative advantages (docs/math.md §1): hand-worked values, an independent formula,
// zero-variance groups, clipping, the non-finite policies, bad inputs, and the invariants
// I4 (permutation) and I6 (rewards split over ranks).
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "star/advantage/group_advantage.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

namespace {

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();
constexpr double infinity = std::numeric_limits<double>::infinity();

/// Requires two vectors of doubles to be identical bit for bit.
void require_bitwise_equal(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("index " << i << ": got " << got[i] << ", want " << want[i]);
    REQUIRE(std::bit_cast<std::uint64_t>(got[i]) == std::bit_cast<std::uint64_t>(want[i]));
  }
}

/// `groups` groups of `size` samples with keys "prompt-<g>", rewards uniform in [0, 1).
struct epoch {
  std::vector<double> rewards;
  std::vector<std::string> keys;
};

epoch random_epoch(std::size_t groups, std::size_t size, std::uint64_t seed) {
  epoch e;
  e.rewards = star::test::uniform(groups * size, seed, 0.0, 1.0);
  for (std::size_t g = 0; g < groups; ++g)
    for (std::size_t i = 0; i < size; ++i) e.keys.push_back("prompt-" + std::to_string(g));
  return e;
}

/// The textbook formula with plain loops, grouping through std::map.
std::vector<double> straightforward_advantages(const std::vector<double>& rewards,
                                               const std::vector<std::string>& keys,
                                               const star::advantage_options& o) {
  std::map<std::string, std::vector<double>> groups;
  for (std::size_t i = 0; i < rewards.size(); ++i) groups[keys[i]].push_back(rewards[i]);
  const auto mean_of = [](const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  const auto std_of = [&](const std::vector<double>& v) {
    const double m = mean_of(v);
    double s = 0.0;
    for (const double x : v) s += (x - m) * (x - m);
    return std::sqrt(s / static_cast<double>(v.size()));
  };
  const double global_std = std_of(rewards);
  std::vector<double> out;
  for (std::size_t i = 0; i < rewards.size(); ++i) {
    const auto& g = groups[keys[i]];
    const double s = o.scope == star::std_scope::global ? global_std : std_of(g);
    out.push_back(std::clamp((rewards[i] - mean_of(g)) / (s + o.eps_std), -o.clip_max, o.clip_max));
  }
  return out;
}

/// One simulated rank of an all-gather: it holds every rank's samples and answers with their
/// concatenation in rank order, checking that it was called with its own block.
template <class Key>
struct simulated_rank_gather {
  const std::vector<std::vector<double>>* rank_rewards;
  const std::vector<std::vector<Key>>* rank_keys;
  std::size_t rank;

  star::gathered_rewards<Key> gather(std::span<const double> local_rewards,
                                     std::span<const Key> local_keys) const {
    const auto& own = (*rank_rewards)[rank];
    REQUIRE(local_rewards.size() == own.size());
    REQUIRE(std::equal(local_keys.begin(), local_keys.end(), (*rank_keys)[rank].begin()));
    star::gathered_rewards<Key> all;
    for (std::size_t r = 0; r < rank_rewards->size(); ++r) {
      if (r == rank) all.local_offset = all.rewards.size();
      all.rewards.insert(all.rewards.end(), (*rank_rewards)[r].begin(), (*rank_rewards)[r].end());
      all.keys.insert(all.keys.end(), (*rank_keys)[r].begin(), (*rank_keys)[r].end());
    }
    return all;
  }
};
static_assert(star::reward_gather<simulated_rank_gather<std::string>, std::string>);
static_assert(star::reward_gather<star::single_process_gather, int>);

}  // namespace

TEST_CASE("advantage: hand-computed example, global and per-group std") {
  // Group "cat" = {1, 3} (mean 2, std 1); group "dog" = {5, 5} (zero variance).
  // Epoch {1, 3, 5, 5}: mean 3.5, squared deviations 6.25 + 0.25 + 2.25 + 2.25 = 11, var 2.75.
  const std::vector<double> rewards{1, 5, 3, 5};
  const std::vector<std::string> keys{"cat", "dog", "cat", "dog"};
  const auto global = star::group_relative_advantages(rewards, keys);
  const double s = std::sqrt(2.75) + 1e-4;
  star::test::require_close(global.advantages, {-1.0 / s, 0.0, 1.0 / s, 0.0}, 1e-15);
  CHECK(global.reward_mean == 3.5);
  CHECK(global.reward_std == Approx(std::sqrt(2.75)).epsilon(1e-15));
  CHECK(global.group_count == 2);
  CHECK(global.zero_variance_groups == 1);
  CHECK(global.kept_samples == 4);
  CHECK(global.dropped.empty());

  star::advantage_options per_group;
  per_group.scope = star::std_scope::per_group;
  const auto local = star::group_relative_advantages(rewards, keys, per_group);
  star::test::require_close(local.advantages, {-1.0 / 1.0001, 0.0, 1.0 / 1.0001, 0.0}, 1e-15);
}

TEST_CASE("advantage: matches a straightforward formula on seeded random groups") {
  for (const std::uint64_t seed : {1u, 2u, 3u}) {
    INFO("seed " << seed);
    const epoch e = random_epoch(6, 5, seed);
    for (const auto scope : {star::std_scope::global, star::std_scope::per_group}) {
      star::advantage_options o;
      o.scope = scope;
      o.clip_max = 1.5;  // some per-group values exceed it
      const auto got = star::group_relative_advantages(e.rewards, e.keys, o);
      star::test::require_close(got.advantages, straightforward_advantages(e.rewards, e.keys, o),
                                1e-13);
      CHECK(got.group_count == 6);
      CHECK(got.zero_variance_groups == 0);
    }
  }
}

TEST_CASE("advantage: integer group ids give the same result as string keys") {
  const epoch e = random_epoch(4, 3, 11);
  std::vector<std::int64_t> ids;
  for (const auto& k : e.keys) ids.push_back(std::stoll(k.substr(7)));
  const auto by_string = star::group_relative_advantages(e.rewards, e.keys);
  const auto by_id = star::group_relative_advantages(e.rewards, ids);
  require_bitwise_equal(by_id.advantages, by_string.advantages);
}

TEST_CASE("advantage: a zero-variance group gets exactly 0 in both std scopes") {
  // 0.1 summed three times is not 0.3 in binary: the mean of an all-equal group is not
  // exactly 0.1, so only an explicit check gives an exact zero.
  const std::vector<double> rewards{0.1, 0.1, 0.1, 0.7, 0.2, 0.1};
  const std::vector<int> keys{7, 7, 7, 8, 8, 9};
  for (const auto scope : {star::std_scope::global, star::std_scope::per_group}) {
    star::advantage_options o;
    o.scope = scope;
    const auto got = star::group_relative_advantages(rewards, keys, o);
    for (std::size_t i : {0u, 1u, 2u, 5u}) {
      INFO("sample " << i);
      REQUIRE(std::bit_cast<std::uint64_t>(got.advantages[i]) == 0u);  // +0.0 exactly
    }
    CHECK(got.advantages[3] > 0.0);
    CHECK(got.advantages[4] < 0.0);
    CHECK(got.zero_variance_groups == 2);  // {0.1 x 3} and the singleton {0.1}
    CHECK(got.group_count == 3);
  }
}

TEST_CASE("advantage: clip at +-A_max") {
  // 50 zeros and one outlier per group: the outlier's per-group z-score is sqrt(50) > 5.
  std::vector<double> rewards(102, 0.0);
  std::vector<int> keys(102, 0);
  rewards[50] = 100.0;
  for (std::size_t i = 51; i < 102; ++i) keys[i] = 1;
  rewards[101] = -100.0;
  star::advantage_options o;
  o.scope = star::std_scope::per_group;
  auto got = star::group_relative_advantages(rewards, keys, o);
  CHECK(got.advantages[50] == 5.0);
  CHECK(got.advantages[101] == -5.0);
  CHECK(std::abs(got.advantages[0]) < 5.0);
  o.clip_max = 0.01;
  got = star::group_relative_advantages(rewards, keys, o);
  CHECK(got.advantages[50] == 0.01);
  CHECK(got.advantages[0] == -0.01);
  CHECK(got.advantages[101] == -0.01);
  CHECK(got.advantages[51] == 0.01);
}

TEST_CASE("advantage: drop policy zeroes and reports non-finite rewards, excluded from stats") {
  star::advantage_options o;
  o.nonfinite = star::nonfinite_policy::drop;
  const std::vector<double> rewards{1.0, not_a_number, 3.0, infinity, 5.0, 5.0, -infinity};
  const std::vector<std::string> keys{"a", "a", "a", "b", "b", "b", "c"};
  const auto got = star::group_relative_advantages(rewards, keys, o);
  CHECK(got.dropped == std::vector<std::size_t>{1, 3, 6});
  CHECK(got.kept_samples == 4);
  CHECK(got.group_count == 2);  // "c" has no kept sample
  CHECK(got.zero_variance_groups == 1);
  CHECK(got.reward_mean == 3.5);
  // Same as the epoch without the dropped samples.
  const auto clean = star::group_relative_advantages(std::vector<double>{1, 3, 5, 5},
                                                     std::vector<std::string>{"a", "a", "b", "b"});
  const std::vector<double> expected{clean.advantages[0], 0.0, clean.advantages[1], 0.0,
                                     clean.advantages[2], clean.advantages[3], 0.0};
  require_bitwise_equal(got.advantages, expected);
  CHECK(got.reward_std == clean.reward_std);

  const std::vector<double> all_nan{not_a_number, not_a_number};
  const auto all_dropped = star::group_relative_advantages(all_nan, std::vector<int>{1, 1}, o);
  CHECK(all_dropped.advantages == std::vector<double>{0.0, 0.0});
  CHECK(all_dropped.group_count == 0);
  CHECK(all_dropped.reward_std == 0.0);
}

TEST_CASE("advantage: error policy names the non-finite sample") {
  const std::vector<double> rewards{1.0, 2.0, 3.0, not_a_number};
  const std::vector<int> keys{0, 0, 1, 1};
  REQUIRE_THROWS_AS(star::group_relative_advantages(rewards, keys), star::value_error);
  REQUIRE_THROWS_WITH(star::group_relative_advantages(rewards, keys),
                      Catch::Contains("rewards[3]") && Catch::Contains("nonfinite"));
  const std::vector<double> infinite{infinity, 1.0, 2.0, 3.0};
  REQUIRE_THROWS_WITH(star::group_relative_advantages(infinite, keys),
                      Catch::Contains("rewards[0]"));
}

TEST_CASE("advantage: bad options name the field") {
  const std::vector<double> rewards{1.0, 2.0};
  const std::vector<int> keys{0, 0};
  star::advantage_options o;
  o.eps_std = -1e-3;
  REQUIRE_THROWS_AS(star::group_relative_advantages(rewards, keys, o), star::option_error);
  REQUIRE_THROWS_WITH(star::group_relative_advantages(rewards, keys, o),
                      Catch::Contains("eps_std"));
  o = {};
  o.eps_std = not_a_number;
  REQUIRE_THROWS_WITH(o.validate(), Catch::Contains("eps_std"));
  for (const double bad : {0.0, -5.0, not_a_number}) {
    o = {};
    o.clip_max = bad;
    REQUIRE_THROWS_AS(star::group_relative_advantages(rewards, keys, o), star::option_error);
    REQUIRE_THROWS_WITH(o.validate(), Catch::Contains("clip_max"));
  }
  o = {};
  o.scope = static_cast<star::std_scope>(7);
  REQUIRE_THROWS_WITH(o.validate(), Catch::Contains("scope"));
  o = {};
  o.nonfinite = static_cast<star::nonfinite_policy>(7);
  REQUIRE_THROWS_WITH(o.validate(), Catch::Contains("nonfinite"));
  o = {};
  o.clip_max = infinity;  // no clipping is allowed
  REQUIRE_NOTHROW(o.validate());
}

TEST_CASE("advantage: empty input gives an empty result") {
  const auto got = star::group_relative_advantages(std::vector<double>{}, std::vector<int>{});
  CHECK(got.advantages.empty());
  CHECK(got.dropped.empty());
  CHECK(got.group_count == 0);
  CHECK(got.kept_samples == 0);
  CHECK(got.reward_mean == 0.0);
  CHECK(got.reward_std == 0.0);
}

TEST_CASE("advantage: rewards and keys of different lengths") {
  const std::vector<double> rewards{1.0, 2.0, 3.0};
  const std::vector<int> keys{0, 0};
  REQUIRE_THROWS_AS(star::group_relative_advantages(rewards, keys), star::shape_error);
  REQUIRE_THROWS_WITH(star::group_relative_advantages(rewards, keys),
                      Catch::Contains("rewards has shape [3] but keys has shape [2]; expected "
                                      "one key per reward"));
}

TEST_CASE("advantage: a gather hook returning inconsistent arrays is rejected") {
  struct broken_gather {
    star::gathered_rewards<int> gather(std::span<const double> r, std::span<const int>) const {
      return {{r.begin(), r.end()}, {}, 0};
    }
  };
  REQUIRE_THROWS_AS(star::group_relative_advantages(std::vector<double>{1.0},
                                                    std::vector<int>{0}, {}, broken_gather{}),
                    star::shape_error);
  REQUIRE_THROWS_WITH(star::group_relative_advantages(std::vector<double>{1.0},
                                                      std::vector<int>{0}, {}, broken_gather{}),
                      Catch::Contains("gather"));
}

TEST_CASE("I6 distributed: advantages over R simulated ranks equal the single-process values") {
  for (const std::size_t ranks : {2u, 3u, 5u}) {
    for (const auto scope : {star::std_scope::global, star::std_scope::per_group}) {
      const std::uint64_t seed = 100 + ranks;
      INFO("seed " << seed << ", R = " << ranks);
      epoch e = random_epoch(7, 6, seed);
      e.rewards[4] = not_a_number;  // one dropped sample
      for (std::size_t i = 12; i < 18; ++i) e.rewards[i] = 0.25;  // a zero-variance group
      star::advantage_options o;
      o.scope = scope;
      o.nonfinite = star::nonfinite_policy::drop;

      // Shuffle the samples (scattering every group over the ranks) and cut the shuffled
      // sequence at random points: uneven counts, possibly an empty rank.
      std::vector<std::size_t> order(e.rewards.size());
      std::iota(order.begin(), order.end(), 0);
      std::mt19937_64 rng(seed);
      std::shuffle(order.begin(), order.end(), rng);
      std::vector<std::size_t> cuts{0, order.size()};
      std::uniform_int_distribution<std::size_t> cut(0, order.size());
      for (std::size_t r = 1; r < ranks; ++r) cuts.push_back(cut(rng));
      std::sort(cuts.begin(), cuts.end());

      std::vector<std::vector<double>> rank_rewards(ranks);
      std::vector<std::vector<std::string>> rank_keys(ranks);
      std::vector<std::size_t> shuffled_order;
      for (std::size_t r = 0; r < ranks; ++r)
        for (std::size_t i = cuts[r]; i < cuts[r + 1]; ++i) {
          rank_rewards[r].push_back(e.rewards[order[i]]);
          rank_keys[r].push_back(e.keys[order[i]]);
          shuffled_order.push_back(order[i]);
        }

      const auto single = star::group_relative_advantages(e.rewards, e.keys, o);
      std::vector<double> distributed(e.rewards.size());
      for (std::size_t r = 0; r < ranks; ++r) {
        const simulated_rank_gather<std::string> gather{&rank_rewards, &rank_keys, r};
        const auto part = star::group_relative_advantages(rank_rewards[r], rank_keys[r], o, gather);
        REQUIRE(part.advantages.size() == rank_rewards[r].size());
        for (std::size_t i = 0; i < part.advantages.size(); ++i)
          distributed[shuffled_order[cuts[r] + i]] = part.advantages[i];
        CHECK(std::bit_cast<std::uint64_t>(part.reward_mean) ==
              std::bit_cast<std::uint64_t>(single.reward_mean));
        CHECK(std::bit_cast<std::uint64_t>(part.reward_std) ==
              std::bit_cast<std::uint64_t>(single.reward_std));
        CHECK(part.group_count == single.group_count);
        CHECK(part.zero_variance_groups == single.zero_variance_groups);
        for (const std::size_t d : part.dropped) CHECK(shuffled_order[cuts[r] + d] == 4u);
      }
      require_bitwise_equal(distributed, single.advantages);
    }
  }
}

TEST_CASE("I4 equivariance: permuting samples permutes advantages identically") {
  for (const std::uint64_t seed : {21u, 22u}) {
    INFO("seed " << seed);
    const epoch e = random_epoch(5, 4, seed);
    std::vector<std::size_t> perm(e.rewards.size());
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937_64 rng(seed);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<double> permuted_rewards;
    std::vector<std::string> permuted_keys;
    for (const std::size_t p : perm) {
      permuted_rewards.push_back(e.rewards[p]);
      permuted_keys.push_back(e.keys[p]);
    }
    for (const auto scope : {star::std_scope::global, star::std_scope::per_group}) {
      star::advantage_options o;
      o.scope = scope;
      const auto base = star::group_relative_advantages(e.rewards, e.keys, o);
      const auto permuted = star::group_relative_advantages(permuted_rewards, permuted_keys, o);
      std::vector<double> expected;
      for (const std::size_t p : perm) expected.push_back(base.advantages[p]);
      require_bitwise_equal(permuted.advantages, expected);
    }
  }
}

TEMPLATE_LIST_TEST_CASE("advantage: backend tensor entry point matches the host values",
                        "[advantage]", star::test::all_backends) {
  TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const epoch e = random_epoch(4, 6, 31);
  for (const auto scope : {star::std_scope::global, star::std_scope::per_group}) {
    star::advantage_options o;
    o.scope = scope;
    const auto rewards = be.from_host(e.rewards, {24});  // [B]
    const auto advantages = star::group_relative_advantages(be, rewards, e.keys, o);  // [B]
    REQUIRE(be.shape_of(advantages) == star::shape{24});
    star::test::require_close(be.to_host(advantages),
                              star::group_relative_advantages(e.rewards, e.keys, o).advantages,
                              tol);
  }
  const auto matrix = be.full({4, 6}, 1.0);  // [G, B/G]
  REQUIRE_THROWS_AS(star::group_relative_advantages(be, matrix, e.keys), star::shape_error);
  REQUIRE_THROWS_WITH(star::group_relative_advantages(be, matrix, e.keys),
                      Catch::Contains("rewards") && Catch::Contains("[4, 6]"));
  const auto short_rewards = be.full({5}, 1.0);  // [B - 19]
  REQUIRE_THROWS_WITH(star::group_relative_advantages(be, short_rewards, e.keys),
                      Catch::Contains("rewards") && Catch::Contains("keys"));
}
