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
  /// (> 0). Give the Gloo/NCCL group the same or a shorter timeout, so that the backend's own
  /// threads also stop waiting on a dead or stalled peer.
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
/// times, with the same key type):
/// 1. each rank's sample count and key-payload byte count (int64 [2]);
/// 2. the rewards as float64, exactly (NaN and infinities keep their bits), each rank's block
///    zero-padded to the largest count and cut back after;
/// 3. one int64 per key: the id for integral keys, the byte length for `std::string` keys;
/// 4. for string keys only, the concatenated key bytes (uint8), padded the same way.
/// Collectives whose longest block is empty are skipped on every rank alike.
///
/// Timeout and failure: each collective is waited on with `options.timeout`. A rank that
/// exits, stalls or throws before a collective makes the others fail within about that
/// timeout (or at once, when the backend sees the closed connection): any c10/c10d or backend
/// exception, an expired wait or an aborted work is rethrown as `star::error` naming this
/// rank, the world size, the collective and the timeout. Never hangs, provided the group's
/// own timeout (Gloo `Options::timeout`, NCCL watchdog) is no longer than `options.timeout`.
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

  /// @brief Every rank's rewards and keys in rank order, and where this rank's block starts.
  /// A collective call: every rank of the group must make it.
  /// @param local_rewards  [B] this rank's rewards (B may differ between ranks, and be 0)
  /// @param local_keys     [B] their group keys (integral ids or `std::string`)
  template <group_key Key>
    requires exchangeable_key<Key>
  gathered_rewards<Key> gather(std::span<const double> local_rewards,
                               std::span<const Key> local_keys) const {
    if (local_keys.size() != local_rewards.size())
      throw shape_error("process_group_gather: local_rewards has shape [" +
                        std::to_string(local_rewards.size()) + "] but local_keys has shape [" +
                        std::to_string(local_keys.size()) + "]; expected one key per reward");
    const encoded_keys encoded = key_codec<Key>::encode(local_keys);
    const std::int64_t header_values[] = {static_cast<std::int64_t>(local_rewards.size()),
                                          static_cast<std::int64_t>(encoded.bytes.size())};
    const std::vector<std::int64_t> header_lengths(static_cast<std::size_t>(size()), 2);
    const auto headers = channel_.allgather_uneven(host_tensor<std::int64_t>(header_values),
                                                   header_lengths,
                                                   "the sample and key-byte counts");
    std::vector<std::int64_t> counts;
    std::vector<std::int64_t> byte_counts;
    for (const at::Tensor& header : headers) {  // [2]
      counts.push_back(header.data_ptr<std::int64_t>()[0]);
      byte_counts.push_back(header.data_ptr<std::int64_t>()[1]);
      if (counts.back() < 0 || byte_counts.back() < 0)
        throw error("process_group_gather: rank " + std::to_string(counts.size() - 1) +
                    " sent negative counts (" + std::to_string(counts.back()) + ", " +
                    std::to_string(byte_counts.back()) + ")");
    }
    const auto rewards = channel_.allgather_uneven(host_tensor(local_rewards), counts,
                                                   "the rewards");
    const auto codes = channel_.allgather_uneven(
        host_tensor<std::int64_t>(encoded.codes), counts, "the key ids or string-key lengths");
    const auto bytes = channel_.allgather_uneven(host_tensor<std::uint8_t>(encoded.bytes),
                                                 byte_counts, "the string-key bytes");

    gathered_rewards<Key> all;
    for (std::size_t r = 0; r < counts.size(); ++r) {
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
