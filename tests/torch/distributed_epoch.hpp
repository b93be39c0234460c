#pragma once
// The epoch the distributed tests gather (20 rewards in 5 prompt groups, int64 and string keys)
// and its advantages as exact bits, shared by the Gloo multi-process tests and the NCCL test.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "star/advantage/group_advantage.hpp"
#include "support/random.hpp"

namespace star::test::distributed {

// ---- the epoch: 20 samples in 5 prompt groups; group i % 5, so every group spans ranks ----

inline constexpr std::size_t epoch_size = 20;

inline std::vector<double> epoch_rewards() {
  auto rewards = star::test::uniform(epoch_size, 20240613, -2.0, 3.0);
  for (std::size_t i = 3; i < epoch_size; i += 5) rewards[i] = 0.5;  // group 3: zero variance
  return rewards;
}

inline std::vector<std::int64_t> epoch_int_keys() {
  const std::int64_t ids[] = {-7, 0, std::int64_t{1} << 40, 42,
                              std::numeric_limits<std::int64_t>::max()};
  std::vector<std::int64_t> keys;
  for (std::size_t i = 0; i < epoch_size; ++i) keys.push_back(ids[i % 5]);
  return keys;
}

inline std::vector<std::string> epoch_string_keys() {
  const std::string prompts[] = {"a photo of a cat", "", std::string("nul\0byte", 8),
                                 "\xe6\x97\xa5\xe6\x9c\xac prompt",
                                 std::string(300, 'x') + " a long prompt"};
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < epoch_size; ++i) keys.push_back(prompts[i % 5]);
  return keys;
}

inline constexpr star::std_scope scopes[] = {star::std_scope::global, star::std_scope::per_group};

inline std::string hex_bits(double value) {
  std::ostringstream out;
  out << std::hex << std::setw(16) << std::setfill('0') << std::bit_cast<std::uint64_t>(value);
  return out.str();
}

/// `hex_bits` of each value: equal lists mean the same bits, NaN payloads and -0 included.
inline std::vector<std::string> hex_bits(std::span<const double> values) {
  std::vector<std::string> out;
  for (const double value : values) out.push_back(hex_bits(value));
  return out;
}

/// One line per (key type, scope): the advantages' exact bits, space separated.
std::string advantage_lines(std::span<const double> rewards, const auto& int_keys,
                            const auto& string_keys, const auto&... gather) {
  std::string lines;
  const auto append = [&](const auto& keys, star::std_scope scope) {
    star::advantage_options options;
    options.scope = scope;
    const auto result = star::group_relative_advantages(rewards, keys, options, gather...);
    for (const double a : result.advantages) lines += hex_bits(a) + " ";
    lines += "\n";
  };
  for (const auto scope : scopes) append(int_keys, scope);
  for (const auto scope : scopes) append(string_keys, scope);
  return lines;
}

}  // namespace star::test::distributed
