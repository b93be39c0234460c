// The reward gather over NCCL: a one-rank c10d::ProcessGroupNCCL on cuda:0, the exchange tensors
// on the GPU. One rank because NCCL refuses two ranks on one device and the GPU machine has one;
// the collectives still run through NCCL's all-gather. The multi-rank logic (uneven counts,
// padding, timeouts) is the same code, tested over Gloo in test_distributed.cpp.
// REQUIRE only: c10's CHECK(cond) macro (from the Torch headers) would replace Catch2's.

#include <catch2/catch.hpp>

#include <chrono>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "distributed_epoch.hpp"
#include "star/torch/process_group_gather.hpp"

namespace {

using namespace std::chrono_literals;
using namespace star::test::distributed;

/// Shuts `group` down where LibTorch has `shutdown()` (2.2+), which it wants before a group is
/// destroyed (it warns otherwise, and exit may hang).
template <class Group>
void shut_down(Group& group) {
  if constexpr (requires { group.shutdown(); }) group.shutdown();
}

/// A one-rank NCCL group on cuda:0 and the gather over it, its exchange tensors there; the
/// group's watchdog and every collective give up after 30 s.
struct one_rank_nccl {
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> group = [] {
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = 30s;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::HashStore>(), 0,
                                                       1, options);
  }();
  star::libtorch::process_group_gather gather{
      group, {.timeout = 30s, .device = c10::Device(c10::kCUDA, 0)}};

  ~one_rank_nccl() { shut_down(*group); }
};

}  // namespace

TEST_CASE("I6 over NCCL: a one-rank group on cuda:0 gives the single-process advantages bit for "
          "bit, int64 and string keys, both std scopes",
          "[cuda][nccl][I6]") {
  const one_rank_nccl nccl;
  const auto& gather = nccl.gather;
  REQUIRE(gather.rank() == 0);
  REQUIRE(gather.size() == 1);
  const auto rewards = epoch_rewards();
  REQUIRE(advantage_lines(rewards, epoch_int_keys(), epoch_string_keys(), gather) ==
          advantage_lines(rewards, epoch_int_keys(), epoch_string_keys()));
}

TEST_CASE("NCCL gather: rewards keep their bits (NaN, infinities, -0) and string keys their bytes "
          "through the GPU",
          "[cuda][nccl]") {
  const one_rank_nccl nccl;
  const auto& gather = nccl.gather;
  const std::vector<double> rewards{1.0, -0.0, std::numeric_limits<double>::quiet_NaN(),
                                    std::numeric_limits<double>::infinity(), -2.5e-300};
  const std::vector<std::string> keys{"a", "", std::string("nul\0byte", 8), "\xe6\x97\xa5", "a"};
  const auto all =
      gather.gather(std::span<const double>(rewards), std::span<const std::string>(keys));
  REQUIRE(all.local_offset == 0);
  REQUIRE(all.keys == keys);
  REQUIRE(hex_bits(all.rewards) == hex_bits(rewards));
}
