#pragma once
/// @file
/// @brief Fused token-mode policy objective (docs/math.md §5): forward (per-row partial
/// sums, reduced to the loss and the metrics by the block that finishes last: one launch; the
/// gradient too when asked) and backward (`d loss / d ell`, `d loss / d kl`), with the
/// definitions of `spatial_policy_objective` and `spatial_policy_gradient` for
/// `objective_mode::token`.

#include <cfloat>
#include <cstddef>
#include <cstdint>

#include "star/core/strided_view.hpp"
#include "star/cuda/api.cuh"
#include "star/cuda/common.cuh"
#include "star/cuda/ptx.cuh"
#include "star/core/kernel_limits.hpp"

namespace star::cuda {

namespace objective_detail {

/// @brief One ratio entry: its allocation weight, loss term, whether the clip acts, and the
/// unclipped slope.
struct token_term {
  float allocation;  ///< `W`, read once for the term and the KL weight
  float log_ratio;   ///< `log rho`
  float ratio;       ///< `rho`
  float loss;        ///< the max term (NaN where the unclipped one is)
  float slope;       ///< the unclipped term's slope, `-Â rho`
  bool clip_acts;    ///< the clipped term is strictly larger
  bool outside;      ///< `|rho - 1| > eps`
};

/// @brief The term of entry (r, n).
template <class T>
__device__ token_term entry_term(const token_objective_inputs<T>& in, float clip_range,
                                 std::int64_t r, std::int64_t n) {
  const float gamma = in.step_weights ? in.step_weights[r] : 1.0f;
  const float allocation = to_float(in.allocation(r, n));
  const float advantage = in.advantages[r] * gamma * allocation;  // Â
  const float log_ratio = to_float(in.log_prob(r, n)) - to_float(in.old_log_prob(r, n));
  const float ratio = expf(log_ratio);
  const float unclipped = -advantage * ratio;
  const float clipped = -advantage * fminf(fmaxf(ratio, 1.0f - clip_range), 1.0f + clip_range);
  // NaN in ell, ell_old, A, W or 0 * inf (a zero advantage with an overflowing ratio) makes
  // the unclipped term NaN: the loss says so (fmaxf would drop it), as the gradient does
  const float loss = isnan(unclipped) ? unclipped : fmaxf(unclipped, clipped);
  return {allocation, log_ratio, ratio, loss, unclipped, clipped > unclipped,
          ratio > 1.0f + clip_range || ratio < 1.0f - clip_range};
}

/// @brief The KL weight `omega` of an entry: its `W` or 1.
__device__ inline float kl_weight(const token_term& term, bool by_allocation) {
  return by_allocation ? term.allocation : 1.0f;
}

/// @brief `1 / (R N)` times the upstream gradient `*loss_grad` (1 where null): the factor of
/// every entry's gradient.
__device__ inline float gradient_scale(const float* loss_grad, std::int64_t rows,
                                       std::int64_t tokens) {
  return (loss_grad ? *loss_grad : 1.0f) / static_cast<float>(rows * tokens);
}

/// @brief The gradient of entry (r, n), whose term is `term`, into the outputs of `gradient`
/// that are set.
__device__ inline void write_entry_gradient(const token_objective_params& params,
                                            const token_objective_gradient& gradient,
                                            float scale, const token_term& term, std::int64_t r,
                                            std::int64_t n) {
  if (gradient.d_log_prob.data)
    gradient.d_log_prob(r, n) = term.clip_acts ? 0.0f : scale * term.slope;
  if (gradient.d_kl.data)
    gradient.d_kl(r, n) = scale * params.beta * kl_weight(term, params.kl_weighted_by_allocation);
}

/// @brief Rows' sums each thread of the adding block loads before it adds any: one memory
/// round trip for up to `4 * blockDim.x` rows.
inline constexpr int rows_in_flight = 4;

/// @brief The totals from the `R` rows' sums, added in an order fixed by `R` and the block size
/// (one block, every thread calls it; all of them take each round trip, so that the block's
/// warps do not diverge).
__device__ inline void write_totals(const double* sums, std::int64_t rows, std::int64_t tokens,
                                    float beta, double* scratch, token_objective_totals* totals) {
  double total[row_sums] = {};  // this thread's rows, then the block's
  for (std::int64_t first = 0; first < rows; first += rows_in_flight * blockDim.x) {
    double loaded[rows_in_flight][row_sums];
#pragma unroll
    for (int i = 0; i < rows_in_flight; ++i) {
      const std::int64_t r = first + threadIdx.x + i * blockDim.x;
#pragma unroll
      for (int s = 0; s < row_sums; ++s)
        loaded[i][s] = r < rows ? __ldcg(sums + r * row_sums + s) : 0.0;
    }
#pragma unroll
    for (int i = 0; i < rows_in_flight; ++i)
#pragma unroll
      for (int s = 0; s < row_sums; ++s) total[s] += loaded[i][s];
  }
  block_sums(total, scratch);
  if (threadIdx.x != 0) return;
  const double per_entry = 1.0 / static_cast<double>(rows * tokens);
  totals->policy_loss = static_cast<float>(total[0] * per_entry);
  totals->clip_fraction = static_cast<float>(total[1] * per_entry);
  totals->outside_clip_range_fraction = static_cast<float>(total[2] * per_entry);
  totals->approx_kl = static_cast<float>(0.5 * total[3] * per_entry);
  totals->kl_loss = static_cast<float>(total[4] * per_entry);
  totals->loss = static_cast<float>((total[0] + beta * total[4]) * per_entry);
}

/// @brief One CUDA block per row: the row's `row_sums` sums, in double, into `sums[r]`, and the
/// row's gradient where `gradient` asks for it; the block that finishes last (counted in
/// `*finished`, zero before and after the launch) adds the rows in a fixed order into
/// `totals`, so the result does not depend on the order the blocks run in.
template <class T>
__global__ void forward_kernel(token_objective_inputs<T> in, token_objective_params params,
                               token_objective_gradient gradient, unsigned* finished,
                               double* sums, token_objective_totals* totals) {
  __shared__ double scratch[32 * row_sums];
  __shared__ bool last;
  const std::int64_t r = blockIdx.x, rows = gridDim.x, tokens = in.log_prob.extents[1];
  const bool differentiate = gradient.d_log_prob.data || gradient.d_kl.data;
  const float scale = differentiate ? gradient_scale(gradient.loss_grad, rows, tokens) : 0.0f;
  double local[row_sums] = {};
#pragma unroll 4
  for (std::int64_t n = threadIdx.x; n < tokens; n += blockDim.x) {
    const token_term term = entry_term(in, params.clip_range, r, n);
    local[0] += term.loss;
    local[1] += term.clip_acts;
    local[2] += term.outside;
    local[3] += term.log_ratio * term.log_ratio;
    if (in.kl.data)  // read before the gradient is written: d_kl may be kl's own memory
      local[4] += kl_weight(term, params.kl_weighted_by_allocation) * to_float(in.kl(r, n));
    if (differentiate) write_entry_gradient(params, gradient, scale, term, r, n);
  }
  block_sums(local, scratch);
  if (threadIdx.x == 0) {
    for (int s = 0; s < row_sums; ++s) sums[r * row_sums + s] = local[s];
    // releases this row's sums; the last block acquires all of them, for all its threads
    // through the barrier below
    last = count_arrival(finished) == rows - 1;
  }
  __syncthreads();
  if (!last) return;
  write_totals(sums, rows, tokens, params.beta, scratch, totals);
  if (threadIdx.x == 0) *finished = 0;
}

/// @brief One thread per entry: the outputs of `gradient` that are set.
template <class T>
__global__ void gradient_kernel(token_objective_inputs<T> in, token_objective_params params,
                                token_objective_gradient gradient) {
  const std::int64_t rows = in.log_prob.extents[0], tokens = in.log_prob.extents[1];
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * tokens) return;
  const std::int64_t r = i / tokens, n = i % tokens;
  const token_term term = entry_term(in, params.clip_range, r, n);
  write_entry_gradient(params, gradient, gradient_scale(gradient.loss_grad, rows, tokens), term,
                       r, n);
}

/// @brief Whether the inputs are consistent: equal [R, N] shapes, advantages present, the
/// options in range, KL present when `beta > 0`.
template <class T>
bool valid(const token_objective_inputs<T>& in, const token_objective_params& params) {
  const auto dims = in.log_prob.extents;
  return dims[0] >= 1 && dims[0] <= max_grid_x && dims[1] >= 1 &&
         in.old_log_prob.extents == dims && in.allocation.extents == dims && in.advantages &&
         (!in.kl.data || in.kl.extents == dims) && params.clip_range > 0.0f &&
         params.clip_range < 1.0f && params.beta >= 0.0f && params.beta <= FLT_MAX &&
         (params.beta == 0.0f || in.kl.data);
}

/// @brief Whether the gradient outputs that are set have the `[R, N]` shape of the inputs
/// (`d_kl` only with a KL input).
template <class T>
bool valid(const token_objective_inputs<T>& in, const token_objective_gradient& gradient) {
  const auto dims = in.log_prob.extents;
  return (!gradient.d_log_prob.data || gradient.d_log_prob.extents == dims) &&
         (!gradient.d_kl.data || (in.kl.data && gradient.d_kl.extents == dims));
}

}  // namespace objective_detail

// Documented at its declaration in star/cuda/api.cuh.
template <class T>
  requires is_kernel_element<T>
cudaError_t token_objective_forward(const token_objective_inputs<T>& in,
                                    const token_objective_params& params,
                                    token_objective_totals* totals, void* workspace,
                                    std::size_t workspace_bytes, cudaStream_t stream,
                                    const token_objective_gradient& gradient) {
  const std::int64_t rows = in.log_prob.extents[0];
  if (!objective_detail::valid(in, params) || !objective_detail::valid(in, gradient) ||
      !totals || !workspace || workspace_bytes < token_objective_workspace_bytes(rows))
    return cudaErrorInvalidValue;
  auto* finished = static_cast<unsigned*>(workspace);  // [1]
  auto* sums = reinterpret_cast<double*>(static_cast<char*>(workspace) +
                                         aligned_bytes(sizeof(unsigned)));  // [R, row_sums]
  objective_detail::forward_kernel<T><<<static_cast<unsigned>(rows), row_block_threads, 0,
                                        stream>>>(in, params, gradient, finished, sums, totals);
  return cudaGetLastError();
}

// Documented at its declaration in star/cuda/api.cuh.
template <class T>
  requires is_kernel_element<T>
cudaError_t token_objective_backward(const token_objective_inputs<T>& in,
                                     const token_objective_params& params,
                                     const token_objective_gradient& gradient,
                                     cudaStream_t stream) {
  const auto [rows, tokens] = in.log_prob.extents;
  if (!objective_detail::valid(in, params) || !objective_detail::valid(in, gradient) ||
      !gradient.d_log_prob.data)
    return cudaErrorInvalidValue;
  objective_detail::gradient_kernel<T>
      <<<blocks_for(rows * tokens, row_block_threads), row_block_threads, 0, stream>>>(
          in, params, gradient);
  return cudaGetLastError();
}

}  // namespace star::cuda
