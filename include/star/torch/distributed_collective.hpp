#pragma once
/// @file
/// @brief A c10d process group seen through the one collective the distributed reward gather
/// needs: an all-gather of 1-D tensors of uneven lengths, each wait bounded by a timeout, every
/// failure rethrown as `star::error` naming the rank, the collective and the timeout.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <c10/util/intrusive_ptr.h>

#include "star/core/error.hpp"

namespace star::libtorch {

/// @brief A c10d communicator with ranks and an all-gather whose work can be waited on with a
/// timeout and asked whether it completed: `c10d::ProcessGroup` (LibTorch 1.13 and 2.x), a
/// 2.x `c10d::Backend`, or a concrete group such as `c10d::ProcessGroupGloo` /
/// `c10d::ProcessGroupNCCL`. The work type is deduced, so no version-specific name
/// (`ProcessGroup::Work` vs `c10d::Work`) is spelled.
template <class Group>
concept c10d_allgather_group =
    requires(Group& group, std::vector<std::vector<at::Tensor>>& outputs,
             std::vector<at::Tensor>& inputs, std::chrono::milliseconds timeout) {
      { group.getRank() } -> std::convertible_to<int>;
      { group.getSize() } -> std::convertible_to<int>;
      { group.allgather(outputs, inputs)->wait(timeout) } -> std::convertible_to<bool>;
      { group.allgather(outputs, inputs)->isCompleted() } -> std::convertible_to<bool>;
      { group.allgather(outputs, inputs)->exception() } -> std::convertible_to<std::exception_ptr>;
    };

/// @brief An all-gather over a c10d group with bounded waits. Exchange tensors live on
/// `device` (CPU for Gloo, the rank's CUDA device for NCCL); results come back on the CPU.
class allgather_channel {
 public:
  /// @param group    the communicator (not null); every rank must make the same calls
  /// @param timeout  the longest any one collective may take (> 0)
  /// @param device   where the exchange tensors live
  template <c10d_allgather_group Group>
  allgather_channel(c10::intrusive_ptr<Group> group, std::chrono::milliseconds timeout,
                    c10::Device device)
      : timeout_(timeout), device_(device) {
    if (!group) throw value_error("process_group_gather: group is a null process group");
    rank_ = group->getRank();
    size_ = group->getSize();
    issue_and_wait_ = [group = std::move(group)](std::vector<std::vector<at::Tensor>>& outputs,
                                                 std::vector<at::Tensor>& inputs,
                                                 std::chrono::milliseconds timeout) {
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      const auto work = group->allgather(outputs, inputs);
      if (!work->wait(timeout)) return false;
      // Gloo's wait returns once the collective is done; NCCL's (without blocking wait) once
      // the current stream is ordered after it: poll its completion against the deadline
      while (!work->isCompleted()) {
        if (std::chrono::steady_clock::now() > deadline)
          throw std::runtime_error("the collective is still running on the device");
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
      // NCCL also counts a collective that failed (a communicator error, the watchdog's
      // abort) as completed
      if (const std::exception_ptr failed = work->exception()) std::rethrow_exception(failed);
      return true;
    };
  }

  /// @brief This process's rank in the group.
  int rank() const { return rank_; }
  /// @brief The number of ranks in the group.
  int size() const { return size_; }
  /// @brief How long each collective may wait before it fails.
  std::chrono::milliseconds timeout() const { return timeout_; }

  /// @brief Every rank's `local` in rank order: each is padded to the longest, all-gathered,
  /// then cut back to its length. Lengths are known to every rank (all-gathered before).
  /// @param local    [lengths[rank]] this rank's values, 1-D, on any device
  /// @param lengths  [size] every rank's length
  /// @param what     the collective's name for error messages ("the rewards", ...)
  /// @return         [size] tensors on the CPU, tensor r of shape [lengths[r]]
  std::vector<at::Tensor> allgather_uneven(const at::Tensor& local,
                                           std::span<const std::int64_t> lengths,
                                           std::string_view what) const {
    const std::int64_t longest = lengths.empty() ? 0 : *std::ranges::max_element(lengths);
    if (longest == 0) {  // every block is empty on every rank: nothing to exchange
      const at::Tensor empty = at::empty({0}, local.options().device(at::kCPU));  // [0]
      return std::vector<at::Tensor>(lengths.size(), empty);
    }
    const at::TensorOptions exchange = local.options().device(device_);
    at::Tensor padded = at::zeros({longest}, exchange);  // [max length]
    padded.narrow(0, 0, local.size(0)).copy_(local);
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (std::size_t r = 0; r < lengths.size(); ++r)
      outputs[0].push_back(at::empty({longest}, exchange));  // [max length]
    std::vector<at::Tensor> inputs{padded};
    run(outputs, inputs, what);
    std::vector<at::Tensor> gathered;
    gathered.reserve(lengths.size());
    for (std::size_t r = 0; r < lengths.size(); ++r) {
      const at::Tensor block = outputs[0][r].narrow(0, 0, lengths[r]);  // [n_r]
      gathered.push_back(block.to(at::kCPU).contiguous());                // [n_r]
    }
    return gathered;
  }

 private:
  void run(std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
           std::string_view what) const {
    const auto failure = [&](std::string_view detail) {
      return error("process_group_gather: rank " + std::to_string(rank_) + " of " +
                   std::to_string(size_) + ": the all-gather of " + std::string(what) +
                   " failed or did not complete within the timeout of " +
                   std::to_string(timeout_.count()) +
                   " ms (another rank may have exited, stalled or passed different "
                   "arguments): " + std::string(detail));
    };
    bool completed = false;
    try {
      completed = issue_and_wait_(outputs, inputs, timeout_);
    } catch (const c10::Error& e) {
      throw failure(e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw failure(e.what());
    }
    if (!completed) throw failure("the collective was aborted");
  }

  std::function<bool(std::vector<std::vector<at::Tensor>>&, std::vector<at::Tensor>&,
                     std::chrono::milliseconds)>
      issue_and_wait_;
  std::chrono::milliseconds timeout_;
  c10::Device device_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace star::libtorch
