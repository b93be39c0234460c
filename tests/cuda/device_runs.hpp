#pragma once
// Host-side entry points that run star's CUDA kernels on host data and copy the results back.
// Compiled by nvcc (device_runs.cu); the checks that include the reference backend are
// compiled by the host compiler (test_cuda_kernels.cpp), so nvcc never parses the generic
// algorithms.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "star/core/token_layout.hpp"

namespace star::test::cuda {

/// The element type the kernels read.
enum class element { f32, f16, bf16 };

/// Name of an element type, for messages.
std::string name_of(element type);

/// `values` rounded to `type` and widened back (the exact inputs a kernel of that type sees).
std::vector<double> rounded(const std::vector<double>& values, element type);

/// Whether a CUDA device is usable; otherwise `why` says what the runtime reported.
bool device_available(std::string& why);

/// One relevance read-out. `q`, `k` are [B, H, T, D] values; on the device they are stored as
/// [B, T, H, D] (heads interleaved, as after a projection), so the kernel reads strided views.
struct readout_case {
  std::int64_t batch, heads, head_dim;
  token_layout layout;
  std::vector<double> q, k;         // [B, H, T, D]
  std::vector<double> lse;          // [B, H, T]; the kernel reads the image rows only
  std::vector<std::int64_t> columns;
  std::vector<double> weights;
  double scale, block_weight;
  std::vector<double> relevance_in;  // [B, N] accumulated into
};

/// What a read-out returns: the launch status and, on success, R and the probabilities.
struct readout_run {
  int status;                          // cudaError_t
  std::vector<double> relevance;       // [B, N]
  std::vector<double> probabilities;   // [B, H, N, S]
};

/// Which kernel a read-out runs.
enum class readout_path {
  automatic,   // accumulate_relevance's choice: tensor cores for 16-bit types on sm_80+
  cuda_cores,  // the CUDA-core kernel whatever the type and device (its only use on sm_80+)
};

/// How one read-out is run.
struct readout_options {
  std::int64_t q_offset = 0;  // elements before q's first one: its pointer off 16-byte alignment
  std::int64_t k_offset = 0;  // the same for k
  bool k_reversed = false;    // k's tokens stored last to first, read through a negative stride
  bool probabilities = true;  // ask for the probabilities (else only R)
  bool overwrite = false;     // R starts as NaNs and the read-out overwrites it
  readout_path path = readout_path::automatic;
};

/// Runs one read-out (misaligned q or k: the kernels must load element by element).
readout_run run_readout(const readout_case& c, element type, const readout_options& options = {});

/// Which kernel `accumulate_relevance` picks for 16-bit elements on this device, and which it
/// should: tensor cores where the compute capability is 8.0 or more and a block may have the
/// kernel's shared memory.
struct readout_kernel_choice {
  bool tensor_cores;           // what the launcher picks
  bool tensor_cores_expected;  // what the device's properties call for
  std::string device;          // name and compute capability
};
readout_kernel_choice readout_kernel_on_this_device();

/// One allocation launch over [B, N] relevance maps.
struct allocation_case {
  std::int64_t rows, tokens;
  std::vector<double> relevance;  // [B, N]
  double tau;
  std::vector<double> lambda;     // [B], empty: entropy schedule
  double w_max;                   // 0: off
};

struct allocation_run {
  int status;
  std::vector<double> weights, lambda, entropy;
  std::vector<int> capped;
};

allocation_run run_allocation(const allocation_case& c, element type);

/// One token-mode objective evaluation, forward and backward.
struct objective_case {
  std::int64_t rows, tokens;
  std::vector<double> log_prob, old_log_prob, allocation;  // [R, N]
  std::vector<double> advantages, step_weights;            // [R]; step_weights empty: 1
  std::vector<double> kl;                                  // [R, N]; empty: none
  double clip_range, beta;
  bool kl_weighted_by_allocation;
  double loss_grad;
};

struct objective_run {
  int status;
  double loss, policy_loss, kl_loss, clip_fraction, outside_clip_range_fraction, approx_kl;
  std::vector<double> d_log_prob, d_kl;
  /// A second forward on the same workspace, into NaN-filled totals, wrote the same bits and
  /// left the workspace's count of finished rows at zero.
  bool repeat_identical;
  /// That second forward also wrote the gradient, into NaN-filled buffers: the same bits as
  /// the backward's.
  bool forward_gradient_identical;
};

objective_run run_token_objective(const objective_case& c, element type);

/// The launch statuses of the objective on `c` without its KL input (float32, `beta = 0`) with
/// gradient outputs that do not fit: a forward with a `[R, N + 1]` `d_log_prob`, a forward
/// with a `d_kl`, and a backward without `d_log_prob`.
std::vector<int> objective_gradient_rejections(objective_case c);

/// The float32 `kl_loss` of the forward writing its gradient (`W`-weighted KL), with `d_kl`
/// in a buffer of its own and then in `kl`'s own memory.
std::array<double, 2> kl_loss_apart_and_in_place(objective_case c);

}  // namespace star::test::cuda
