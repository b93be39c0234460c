#pragma once
/// @file
/// @brief The reward gather of star's group-relative advantages (`star::reward_gather`) over a
/// c10d process group, so that ranks holding different members of the same prompt group get
/// bitwise the single-process advantages (invariant I6).

#include <chrono>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/Device.h>
#include <c10/util/intrusive_ptr.h>

#include "star/advantage/reward_gather.hpp"
#include "star/core/error.hpp"
#include "star/torch/distributed_collective.hpp"
#include "star/torch/distributed_keys.hpp"

namespace star::libtorch {

/// @brief Options of `process_group_gather`.
struct process_group_gather_options {
  /// The longest any one collective may take before this rank gives up with `star::error`
  /// (> 0). Give the Gloo/NCCL group a timeout not much longer: the group is unusable once a
  /// collective has failed, and its destructor (at the latest the process's exit) waits for
  /// the backend's own timeout (Gloo's default: 30 minutes).
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
  /// Where the exchange tensors live: `c10::kCPU` for Gloo, this rank's CUDA device for NCCL.
  c10::Device device = c10::Device(c10::kCPU);

  /// @brief Throws `star::option_error` naming the field and its allowed range.
  void validate() const {
    if (timeout.count() <= 0)
      throw option_error("process_group_gather_options.timeout: must be > 0 ms, got " +
                         std::to_string(timeout.count()) + " ms");
  }
};

/// @brief All-gathers every rank's rewards and group keys over a c10d process group.
///
/// What is exchanged, in four all-gathers (every rank must call `gather` the same number of
/// times):
/// 1. a header (int64 [4]): whether the rank's input is valid, its key type, its sample count
///    and its key-payload byte count. Every rank sends it, even one whose `local_keys` do not
///    match its `local_rewards`, so that all ranks fail together on such input or on
///    different key types (each names the rank at fault) and stay in step for the next call;
/// 2. the rewards as float64, exactly (NaN and infinities keep their bits), each rank's block
///    zero-padded to the largest count and cut back after;
/// 3. one int64 per key: the id for integral keys, the byte length for `std::string` keys;
/// 4. for string keys only, the concatenated key bytes (uint8), padded the same way.
/// Collectives whose longest block is empty are skipped on every rank alike.
///
/// Timeout and failure: each collective must complete within `options.timeout`. A rank that
/// exits, stalls or never calls `gather` makes the others fail within about that timeout (or
/// at once, when the backend sees the closed connection): any c10/c10d or backend exception,
/// an expired wait or an aborted work is rethrown as `star::error` naming this rank, the world
/// size, the collective and the timeout. On NCCL, whose `wait` only orders the current stream
/// after the collective (unless `TORCH_NCCL_BLOCKING_WAIT` is set), completion is polled
/// against the same deadline; a collective that timed out stays queued on the GPU, so abort
/// the communicator or end the process.
///
/// Works with LibTorch 1.13 and 2.x: any `c10d_allgather_group` (`c10d::ProcessGroup`, a 2.x
/// `c10d::Backend`, `ProcessGroupGloo`, `ProcessGroupNCCL`).
class process_group_gather {
 public:
  /// @param group    the process group (not null); shared, not owned exclusively
  /// @param options  timeout and exchange device (validated)
  template <c10d_allgather_group Group>
  explicit process_group_gather(c10::intrusive_ptr<Group> group,
                                const process_group_gather_options& options = {})
      : channel_(std::move(group), validated(options).timeout, options.device) {}

  /// @brief This process's rank in the group.
  int rank() const { return channel_.rank(); }
  /// @brief The number of ranks.
  int size() const { return channel_.size(); }

  /// @brief Every rank's rewards and keys in rank order, where each rank's block starts
  /// (`rank_offsets`) and where this rank's does (`local_offset`).
  /// A collective call: every rank of the group must make it.
  /// @param local_rewards  [B] this rank's rewards (B may differ between ranks, and be 0)
  /// @param local_keys     [B] their group keys (integral ids or `std::string`)
  /// @throws shape_error on a rank whose `local_keys` do not match its `local_rewards`, and
  /// `star::error` naming that rank on the others (likewise for different key types); after
  /// either, every rank is ready for the next call. `star::error` on a failed collective.
  template <group_key Key>
    requires exchangeable_key<Key>
  gathered_rewards<Key> gather(std::span<const double> local_rewards,
                               std::span<const Key> local_keys) const {
    const bool valid = local_keys.size() == local_rewards.size();
    const encoded_keys encoded = valid ? key_codec<Key>::encode(local_keys) : encoded_keys{};
    const std::int64_t header_values[] = {valid ? 1 : 0,
                                          static_cast<std::int64_t>(key_codec<Key>::kind),
                                          static_cast<std::int64_t>(encoded.codes.size()),
                                          static_cast<std::int64_t>(encoded.bytes.size())};
    const std::vector<std::int64_t> header_lengths(static_cast<std::size_t>(size()), 4);
    const auto headers = channel_.allgather_uneven(host_tensor<std::int64_t>(header_values),
                                                   header_lengths, "the headers");  // [4] per rank
    if (!valid)
      throw mismatched_keys_error("process_group_gather", "local_rewards", local_rewards.size(),
                                  "local_keys", local_keys.size());
    std::vector<std::int64_t> counts;
    std::vector<std::int64_t> byte_counts;
    for (const at::Tensor& header : headers) {  // [4]
      const std::int64_t* fields = header.data_ptr<std::int64_t>();
      const std::string sender = "process_group_gather: rank " + std::to_string(counts.size());
      if (fields[0] != 1)
        throw error(sender + " passed a different number of keys than rewards; the gather "
                             "fails on every rank");
      if (fields[1] != header_values[1])
        throw error(sender + " gathers keys of another type (" + key_kind_name(fields[1]) +
                    ") than rank " + std::to_string(rank()) + " (" +
                    key_kind_name(header_values[1]) + ")");
      if (fields[2] < 0 || fields[3] < 0)
        throw error(sender + " sent negative counts (" + std::to_string(fields[2]) + ", " +
                    std::to_string(fields[3]) + ")");
      counts.push_back(fields[2]);
      byte_counts.push_back(fields[3]);
    }
    const auto rewards = channel_.allgather_uneven(host_tensor(local_rewards), counts,
                                                   "the rewards");  // [counts[r]] per rank r
    const auto codes = channel_.allgather_uneven(  // [counts[r]] per rank r
        host_tensor<std::int64_t>(encoded.codes), counts, "the key ids or string-key lengths");
    const auto bytes = channel_.allgather_uneven(  // [byte_counts[r]] per rank r
        host_tensor<std::uint8_t>(encoded.bytes), byte_counts, "the string-key bytes");

    gathered_rewards<Key> all;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      all.rank_offsets.push_back(all.rewards.size());
      if (static_cast<int>(r) == rank()) all.local_offset = all.rewards.size();
      const auto* values = rewards[r].data_ptr<double>();
      all.rewards.insert(all.rewards.end(), values, values + counts[r]);
      const std::vector<Key> keys = key_codec<Key>::decode(
          {codes[r].data_ptr<std::int64_t>(), static_cast<std::size_t>(counts[r])},
          {bytes[r].data_ptr<std::uint8_t>(), static_cast<std::size_t>(byte_counts[r])});
      all.keys.insert(all.keys.end(), keys.begin(), keys.end());
    }
    return all;
  }

 private:
  static const process_group_gather_options& validated(
      const process_group_gather_options& options) {
    options.validate();
    return options;
  }

  /// The name of a header's key type.
  static std::string key_kind_name(std::int64_t kind) {
    switch (static_cast<key_kind>(kind)) {
      case key_kind::integral: return "integral ids";
      case key_kind::string: return "strings";
    }
    return "unknown kind " + std::to_string(kind);
  }

  /// A CPU copy of host values, as a 1-D tensor of their dtype.
  template <class T>
  static at::Tensor host_tensor(std::span<const T> values) {
    const auto dtype = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    at::Tensor tensor = at::empty({static_cast<std::int64_t>(values.size())}, dtype);  // [n]
    if (!values.empty()) std::memcpy(tensor.data_ptr<T>(), values.data(), values.size_bytes());
    return tensor;
  }

  allgather_channel channel_;
};

}  // namespace star::libtorch
