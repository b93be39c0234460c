#pragma once
/// @file
/// @brief The host-side interface of the fused CUDA kernels: argument structs, workspace
/// sizes and launcher declarations. Compilable by a host compiler (e.g. a LibTorch
/// translation unit in C++20), so code that only calls the launchers needs no nvcc; their
/// definitions are in the kernel headers, instantiated for float / half / bfloat16 by
/// star/cuda/instantiate.cuh in one nvcc-compiled file.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include "star/core/strided_view.hpp"
#include "star/core/token_layout.hpp"
#include "star/core/kernel_limits.hpp"

namespace star::cuda {
/// @brief The element types the kernels read: float, `__half`, `__nv_bfloat16`.
template <class T>
inline constexpr bool is_kernel_element =
    std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

/// @brief `bytes` rounded up to 256, so workspace pieces laid end to end stay aligned.
constexpr std::size_t aligned_bytes(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

/// @brief The inputs of one transformer block's read-out.
template <class T>
struct readout_inputs {
  strided_view<const T, 4> q;          ///< [B, H, T, D] post-QK-norm queries of the joint sequence
  strided_view<const T, 4> k;          ///< [B, H, T, D] post-QK-norm keys
  /// [B, H, T] row log-sum-exp over ALL keys (the image rows are read)
  strided_view<const float, 3> lse;
  std::span<const std::int64_t> columns;  ///< [S] host: text-block indices `j`, in `[0, L)`
  std::span<const float> weights;      ///< [S] host: `w_j`, in the order of `columns`
  float scale = 0.0f;                  ///< logit scale `s` (e.g. `1 / sqrt(D)`), > 0
  float block_weight = 1.0f;           ///< factor of this block's map in the sum over blocks
  bool accumulate = true;  ///< add the map to `relevance`; false: overwrite it (then unread)
};

/// @brief Workspace bytes of `accumulate_relevance`: one float per (head, batch, image row).
/// @param batch `B`  @param heads `H`  @param image_tokens `N`
constexpr std::size_t relevance_workspace_bytes(std::int64_t batch, std::int64_t heads,
                                                std::int64_t image_tokens) {
  return aligned_bytes(static_cast<std::size_t>(batch * heads * image_tokens) * sizeof(float));
}

/// @brief Adds one block's relevance map to `relevance` (or writes it there when
/// `in.accumulate` is false):
/// `R[b, n] += block_weight * sum_j w_j * mean_h exp(s q[b,h,n] . k[b,h,j] - lse[b,h,n])`,
/// image rows `n`, text keys `j` and the LSE rows placed in the joint sequence by `layout`.
/// Cost `O(B H N |S| D)`; reads the image rows of `q` once per chunk of 16 columns, with
/// 16-byte loads where rows are `D`-contiguous and 16-byte aligned. float16 and bfloat16 run
/// on tensor cores on compute capability 8.0 and later where a block may use 105 KiB of shared
/// memory (sm_80, sm_90; one launch per chunk) and no stride of q, k or lse is negative,
/// everything else on CUDA cores (one launch per chunk and one for the head mean, through
/// `workspace`).
/// Launches are queued on `stream`; nothing is synchronised.
/// @param in            q, k, lse, columns, weights, scale, block weight
/// @param layout        where the image and text tokens sit in `T`
/// @param relevance     [B, N] device, accumulated into (or overwritten: `in.accumulate`)
/// @param probabilities [B, H, N, S] device, written when `data` is non-null
/// @param workspace     device, at least `relevance_workspace_bytes(B, H, N)` bytes (unused
///                      on tensor cores, still required)
/// @param workspace_bytes the size of `workspace`
/// @param stream        the stream the launches are queued on
/// @return `cudaErrorInvalidValue` on inconsistent shapes, an empty or out-of-range column
///         list, `D > max_readout_head_dim`, `B` or `H` above `max_grid_yz`, `scale <= 0`
///         or too small a workspace; otherwise the launch status
template <class T>
  requires is_kernel_element<T>
cudaError_t accumulate_relevance(const readout_inputs<T>& in, const token_layout& layout,
                                 strided_view<float, 2> relevance,
                                 strided_view<float, 4> probabilities, void* workspace,
                                 std::size_t workspace_bytes, cudaStream_t stream);

/// @brief The knobs of one allocation launch.
struct allocation_params {
  float tau = 1.0f;               ///< sharpening temperature, finite and > 0 (`pow` skipped at 1)
  /// [B] device: `lambda` per row, in [0, 1]; null: the normalised entropy
  const float* lambda = nullptr;
  float w_max = 0.0f;             ///< cap `W <= w_max` when >= 1; 0: off
};

/// @brief Where one allocation launch writes.
struct allocation_outputs {
  strided_view<float, 2> weights;   ///< [B, N] `W`, mean 1 per row
  float* lambda = nullptr;          ///< [B] the `lambda` used per row
  float* entropy = nullptr;         ///< [B] `H(m)` of the sharpened map, nats
  /// [B] entries held at `w_max` per row (0 when the cap is off); -1 marks a row with a
  /// negative or non-finite relevance entry or a given `lambda` outside [0, 1] (or NaN),
  /// whose other outputs are NaN.
  std::int32_t* capped = nullptr;
};

/// @brief Allocation weights of every row of `relevance`, as `star::allocate` computes them
/// (no workspace: each row lives in shared memory):
/// `m = R^{1/tau} / sum R^{1/tau}` (row max divided out first; an all-zero row gives `1/N`),
/// `H = -sum m log m`, `lambda` given or `clamp(H / log N, 0, 1)`, `W = (1 - lambda) N m +
/// lambda`, then with a cap the projection onto `{mean W = 1, 0 <= W <= w_max}`.
/// @param relevance [B, N] device, `1 <= N <= max_allocation_tokens`
/// @param params    tau, per-row lambda (device) or entropy schedule, cap
/// @param out       weights [B, N], lambda [B], entropy [B], capped [B] (all device)
/// @param stream    the stream the launch is queued on
/// @return `cudaErrorInvalidValue` on bad shapes or options, else the launch status
template <class T>
  requires is_kernel_element<T>
cudaError_t allocate_rows(strided_view<const T, 2> relevance, const allocation_params& params,
                          const allocation_outputs& out, cudaStream_t stream);

/// @brief The inputs of the token-mode objective, `R` rows (rollout, step) by `N` tokens.
template <class T>
struct token_objective_inputs {
  strided_view<const T, 2> log_prob;      ///< [R, N] `ell`
  strided_view<const T, 2> old_log_prob;  ///< [R, N] `ell_old`
  strided_view<const T, 2> allocation;    ///< [R, N] `W`
  const float* advantages = nullptr;      ///< [R] device `A`
  const float* step_weights = nullptr;    ///< [R] device `gamma`; null: 1
  strided_view<const T, 2> kl;            ///< [R, N] per-token KL; `data` null: none
};

/// @brief The options of the token-mode objective.
struct token_objective_params {
  float clip_range = 2e-3f;        ///< `eps_tok`, in (0, 1)
  float beta = 0.0f;               ///< KL weight, >= 0 (needs `kl` when > 0)
  bool kl_weighted_by_allocation = false;  ///< `mean W kl` instead of `mean kl`
};

/// @brief The loss and the metrics of `policy_objective_result`, on the device.
struct token_objective_totals {
  float loss;                         ///< `L_pg + beta L_kl`
  float policy_loss;                  ///< `L_pg`
  float kl_loss;                      ///< `L_kl` (0 without a KL input)
  float clip_fraction;                ///< entries where the clipped term is strictly larger
  float outside_clip_range_fraction;  ///< entries with `|rho - 1| > eps`
  float approx_kl;                    ///< `0.5 mean (log rho)^2`
};

namespace objective_detail {
/// @brief The per-row sums the forward pass reduces: policy term, clip count, outside
/// count, squared log-ratio, weighted KL.
inline constexpr int row_sums = 5;
}  // namespace objective_detail

/// @brief Workspace bytes of `token_objective_forward`: a count of finished rows, then the
/// per-row sums in double.
/// @param rows `R`
constexpr std::size_t token_objective_workspace_bytes(std::int64_t rows) {
  const std::size_t sums = static_cast<std::size_t>(rows) * objective_detail::row_sums;
  return aligned_bytes(sizeof(unsigned)) + aligned_bytes(sums * sizeof(double));
}

/// @brief Where the token-mode objective's gradient goes: `d loss / d ell` (and `d loss / d kl`)
/// times the upstream gradient, i.e. `-Â rho / (R N)` where the clip does not act, 0 where it
/// does, and `beta omega / (R N)` for the KL — as `spatial_policy_gradient` for
/// `objective_mode::token`.
struct token_objective_gradient {
  const float* loss_grad = nullptr;   ///< device, one float `d out / d loss`; null: 1
  strided_view<float, 2> d_log_prob;  ///< [R, N] device; `data` null: not written
  /// [R, N] device; `data` null: not written (needs `kl`). It may be `kl`'s own memory where
  /// `kl` is float32 with the strides of `d_kl` (the forward reads each `kl` entry before it
  /// writes that entry's gradient); over a 16-bit `kl` it would overwrite unread entries.
  strided_view<float, 2> d_kl;
};

/// @brief The token-mode objective `L_pg + beta L_kl` and its metrics, written to `totals`
/// (device) — the values `spatial_policy_objective` returns for `objective_mode::token` — in
/// one launch: the last row to finish adds the per-row sums in a fixed order (deterministic).
/// A caller that knows the upstream gradient already (e.g. 1 for `loss.backward()`) can have
/// the same pass write the gradient too, bit for bit what `token_objective_backward` writes,
/// instead of reading the inputs again in a second launch.
/// @param in        ell, ell_old, W [R, N]; A, gamma [R]; kl [R, N] optional (all device)
/// @param params    eps_tok, beta, KL weighting
/// @param totals    device, one `token_objective_totals`
/// @param workspace device, at least `token_objective_workspace_bytes(R)` bytes whose first
///                  `sizeof(unsigned)` (the count) are zero before the first call (e.g.
///                  `cudaMemsetAsync`); each call leaves them zero, so forward calls in stream
///                  order may share one workspace; concurrent calls, or other uses of it in
///                  between, may not
/// @param workspace_bytes the size of `workspace`
/// @param stream    the stream the launch is queued on
/// @param gradient  the gradient outputs this pass also writes (none by default)
/// @return `cudaErrorInvalidValue` on inconsistent inputs or gradient shapes, else the launch
///         status
template <class T>
  requires is_kernel_element<T>
cudaError_t token_objective_forward(const token_objective_inputs<T>& in,
                                    const token_objective_params& params,
                                    token_objective_totals* totals, void* workspace,
                                    std::size_t workspace_bytes, cudaStream_t stream,
                                    const token_objective_gradient& gradient = {});

/// @brief The gradient of `token_objective_forward` (see `token_objective_gradient`), in a
/// launch of its own: for autograd, where the upstream gradient arrives after the forward.
/// @param in        the inputs of the forward pass
/// @param params    its options
/// @param gradient  `loss_grad`, `d_log_prob` (required) and `d_kl` (optional)
/// @param stream    the stream the launch is queued on
/// @return `cudaErrorInvalidValue` on inconsistent inputs or gradient shapes, a `d_kl` without
///         `kl`, or a missing `d_log_prob`; else the launch status
template <class T>
  requires is_kernel_element<T>
cudaError_t token_objective_backward(const token_objective_inputs<T>& in,
                                     const token_objective_params& params,
                                     const token_objective_gradient& gradient,
                                     cudaStream_t stream);
}  // namespace star::cuda
