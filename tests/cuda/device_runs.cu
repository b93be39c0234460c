// nvcc side of the CUDA kernel tests: device buffers, launches, copies back.

#include "device_runs.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "star/cuda.hpp"

namespace star::test::cuda {
namespace {

/// A device buffer of `count` elements of `T`, freed on scope exit.
template <class T>
struct device_buffer {
  T* data = nullptr;
  explicit device_buffer(std::size_t count) {
    if (count && cudaMalloc(&data, count * sizeof(T)) != cudaSuccess)
      throw std::runtime_error("cudaMalloc failed");
  }
  ~device_buffer() { cudaFree(data); }
  device_buffer(device_buffer&& other) noexcept : data(std::exchange(other.data, nullptr)) {}
  device_buffer& operator=(device_buffer&&) = delete;
};

template <class T>
T narrow(double x) {
  if constexpr (std::is_same_v<T, __half>) return __float2half(static_cast<float>(x));
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __float2bfloat16(static_cast<float>(x));
  else return static_cast<float>(x);
}

template <class T>
double widen(T x) {
  if constexpr (std::is_same_v<T, __half>) return __half2float(x);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(x);
  else return x;
}

/// `values` converted to `T` and copied to a new device buffer.
template <class T>
device_buffer<T> upload(const std::vector<double>& values) {
  std::vector<T> host(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) host[i] = narrow<T>(values[i]);
  device_buffer<T> buffer(values.size());
  if (cudaMemcpy(buffer.data, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice) !=
      cudaSuccess)
    throw std::runtime_error("cudaMemcpy to device failed");
  return buffer;
}

/// The inputs of an objective case on the device, as `T` (`advantages` and `step_weights` as
/// float), and the launchers' view of them.
template <class T>
struct device_objective_inputs {
  device_buffer<T> log_prob, old_log_prob, allocation, kl;  // [R, N]; kl empty: none
  device_buffer<float> advantages, step_weights;            // [R]; step_weights empty: 1
  star::cuda::token_objective_inputs<T> view;

  explicit device_objective_inputs(const objective_case& c)
      : log_prob(upload<T>(c.log_prob)),
        old_log_prob(upload<T>(c.old_log_prob)),
        allocation(upload<T>(c.allocation)),
        kl(upload<T>(c.kl)),
        advantages(upload<float>(c.advantages)),
        step_weights(upload<float>(c.step_weights)) {
    const std::array<std::int64_t, 2> dims{c.rows, c.tokens};
    view = {star::contiguous_view<const T, 2>(log_prob.data, dims),
            star::contiguous_view<const T, 2>(old_log_prob.data, dims),
            star::contiguous_view<const T, 2>(allocation.data, dims),
            advantages.data,
            c.step_weights.empty() ? nullptr : step_weights.data,
            c.kl.empty() ? star::strided_view<const T, 2>{}
                         : star::contiguous_view<const T, 2>(kl.data, dims)};
  }
};

/// Sets `bytes` bytes at `data` to `value` (0xff: float NaNs).
void fill_bytes(void* data, int value, std::size_t bytes) {
  if (cudaMemset(data, value, bytes) != cudaSuccess) throw std::runtime_error("cudaMemset failed");
}

/// An objective case ready to launch: its inputs on the device, one totals record, a workspace
/// whose count of finished rows is zero, and the options of `c`.
template <class T>
struct device_objective {
  device_objective_inputs<T> inputs;
  device_buffer<star::cuda::token_objective_totals> totals{1};
  std::size_t bytes;
  device_buffer<unsigned char> workspace;
  star::cuda::token_objective_params params;

  explicit device_objective(const objective_case& c)
      : inputs(c),
        bytes(star::cuda::token_objective_workspace_bytes(c.rows)),
        workspace(bytes),
        params{static_cast<float>(c.clip_range), static_cast<float>(c.beta),
               c.kl_weighted_by_allocation} {
    fill_bytes(workspace.data, 0, bytes);
  }

  /// The forward pass into `out`, writing `gradient` too; its launch status.
  cudaError_t forward(star::cuda::token_objective_totals* out,
                      const star::cuda::token_objective_gradient& gradient = {}) const {
    return star::cuda::token_objective_forward(inputs.view, params, out, workspace.data, bytes,
                                               nullptr, gradient);
  }
};

/// `count` elements of `T` at `data` on the device, copied to the host.
template <class T>
std::vector<T> copy_to_host(const T* data, std::size_t count) {
  std::vector<T> host(count);
  if (cudaMemcpy(host.data(), data, count * sizeof(T), cudaMemcpyDeviceToHost) != cudaSuccess)
    throw std::runtime_error("cudaMemcpy to host failed");
  return host;
}

/// `count` elements of a device buffer, widened to double.
template <class T>
std::vector<double> download(const T* data, std::size_t count) {
  const std::vector<T> host = copy_to_host(data, count);
  std::vector<double> out(count);
  for (std::size_t i = 0; i < count; ++i) out[i] = widen(host[i]);
  return out;
}

/// Whether two device buffers of `count` floats hold the same bits.
bool same_bits(const float* a, const float* b, std::size_t count) {
  const std::vector<float> host_a = copy_to_host(a, count), host_b = copy_to_host(b, count);
  return std::memcmp(host_a.data(), host_b.data(), count * sizeof(float)) == 0;
}

/// Calls `f.template operator()<T>()` with the element type `type` names.
template <class F>
auto dispatch(element type, F&& f) {
  switch (type) {
    case element::f16: return f.template operator()<__half>();
    case element::bf16: return f.template operator()<__nv_bfloat16>();
    default: return f.template operator()<float>();
  }
}

/// [B, H, T, D] values stored as [B, T, H, D].
std::vector<double> heads_interleaved(const std::vector<double>& x, std::int64_t b_,
                                      std::int64_t h_, std::int64_t t_, std::int64_t d_) {
  std::vector<double> out(x.size());
  for (std::int64_t b = 0; b < b_; ++b)
    for (std::int64_t h = 0; h < h_; ++h)
      for (std::int64_t t = 0; t < t_; ++t)
        for (std::int64_t d = 0; d < d_; ++d)
          out[((b * t_ + t) * h_ + h) * d_ + d] = x[((b * h_ + h) * t_ + t) * d_ + d];
  return out;
}

/// `heads_interleaved(x)` with each batch element's tokens in reverse order: `[B, T, H, D]`
/// holding token `T - 1 - t` in row `t`.
std::vector<double> tokens_reversed(const std::vector<double>& x, std::int64_t b_,
                                    std::int64_t h_, std::int64_t t_, std::int64_t d_) {
  const std::vector<double> interleaved = heads_interleaved(x, b_, h_, t_, d_);
  std::vector<double> out(interleaved.size());
  const std::int64_t row = h_ * d_;
  for (std::int64_t b = 0; b < b_; ++b)
    for (std::int64_t t = 0; t < t_; ++t)
      std::copy_n(interleaved.begin() + (b * t_ + t) * row, row,
                  out.begin() + (b * t_ + t_ - 1 - t) * row);
  return out;
}

}  // namespace

std::string name_of(element type) {
  return type == element::f16 ? "float16" : type == element::bf16 ? "bfloat16" : "float32";
}

std::vector<double> rounded(const std::vector<double>& values, element type) {
  return dispatch(type, [&]<class T>() {
    std::vector<double> out(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) out[i] = widen(narrow<T>(values[i]));
    return out;
  });
}

bool device_available(std::string& why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    why = cudaGetErrorString(status);
    return false;
  }
  if (count == 0) why = "no CUDA device";
  return count > 0;
}

readout_run run_readout(const readout_case& c, element type, const readout_options& options) {
  return dispatch(type, [&]<class T>() {
    const std::int64_t tokens = c.layout.total_tokens(), image = c.layout.image_tokens();
    const auto columns = static_cast<std::int64_t>(c.columns.size());
    const auto offset_upload = [&](const std::vector<double>& values, std::int64_t offset) {
      auto stored = heads_interleaved(values, c.batch, c.heads, tokens, c.head_dim);
      stored.insert(stored.begin(), static_cast<std::size_t>(offset), 0.0);
      return upload<T>(stored);
    };
    const auto q = offset_upload(c.q, options.q_offset);
    const auto k = options.k_reversed ? upload<T>(tokens_reversed(c.k, c.batch, c.heads, tokens,
                                                                  c.head_dim))
                                      : offset_upload(c.k, options.k_offset);
    const auto lse = upload<float>(c.lse);
    const auto relevance = upload<float>(c.relevance_in);
    if (options.overwrite) fill_bytes(relevance.data, 0xff, c.relevance_in.size() * sizeof(float));
    device_buffer<float> probabilities(c.batch * c.heads * image * columns);
    const std::size_t bytes = star::cuda::relevance_workspace_bytes(c.batch, c.heads, image);
    device_buffer<unsigned char> workspace(bytes);

    const std::array<std::int64_t, 4> qk_extents{c.batch, c.heads, tokens, c.head_dim};
    const std::array<std::int64_t, 4> qk_strides{tokens * c.heads * c.head_dim, c.head_dim,
                                                 c.heads * c.head_dim, 1};
    std::array<std::int64_t, 4> k_strides = qk_strides;
    const T* k_data = k.data + options.k_offset;
    if (options.k_reversed) {  // token t of k at stored row T - 1 - t
      k_strides[2] = -k_strides[2];
      k_data = k.data + (tokens - 1) * c.heads * c.head_dim;
    }
    std::vector<float> weights(c.weights.begin(), c.weights.end());
    const star::cuda::readout_inputs<T> in{
        {q.data + options.q_offset, qk_extents, qk_strides},
        {k_data, qk_extents, k_strides},
        star::contiguous_view<const float, 3>(lse.data, {c.batch, c.heads, tokens}),
        c.columns,
        weights,
        static_cast<float>(c.scale),
        static_cast<float>(c.block_weight),
        !options.overwrite};
    readout_run run{};
    const auto relevance_view = star::contiguous_view<float, 2>(relevance.data, {c.batch, image});
    const auto probabilities_view =
        options.probabilities
            ? star::contiguous_view<float, 4>(probabilities.data,
                                              {c.batch, c.heads, image, columns})
            : star::strided_view<float, 4>{};
    run.status =
        options.path == readout_path::automatic
            ? star::cuda::accumulate_relevance(in, c.layout, relevance_view, probabilities_view,
                                               workspace.data, bytes, nullptr)
            : star::cuda::readout_detail::queue_readout(
                  in, c.layout, relevance_view, probabilities_view,
                  reinterpret_cast<float*>(workspace.data), false, nullptr);
    if (run.status != cudaSuccess) return run;
    run.status = cudaDeviceSynchronize();
    if (run.status != cudaSuccess) return run;
    run.relevance = download(relevance.data, c.batch * image);
    if (options.probabilities)
      run.probabilities = download(probabilities.data, c.batch * c.heads * image * columns);
    return run;
  });
}

readout_kernel_choice readout_kernel_on_this_device() {
  using namespace star::cuda::readout_detail;
  int device = 0;
  cudaDeviceProp properties{};
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaGetDeviceProperties(&properties, device) != cudaSuccess)
    return {false, false, "unknown"};
  return {readout_uses_tensor_cores<__half>() && readout_uses_tensor_cores<__nv_bfloat16>(),
          properties.major >= 8 && properties.sharedMemPerBlockOptin >= tensor_core_block_bytes(),
          std::string(properties.name) + ", sm_" + std::to_string(properties.major) +
              std::to_string(properties.minor)};
}

allocation_run run_allocation(const allocation_case& c, element type) {
  return dispatch(type, [&]<class T>() {
    const auto relevance = upload<T>(c.relevance);
    const auto given_lambda = upload<float>(c.lambda);
    device_buffer<float> weights(c.rows * c.tokens), lambda(c.rows), entropy(c.rows);
    device_buffer<std::int32_t> capped(c.rows);
    const star::cuda::allocation_params params{static_cast<float>(c.tau),
                                               c.lambda.empty() ? nullptr : given_lambda.data,
                                               static_cast<float>(c.w_max)};
    const star::cuda::allocation_outputs out{
        star::contiguous_view<float, 2>(weights.data, {c.rows, c.tokens}), lambda.data,
        entropy.data, capped.data};
    allocation_run run{};
    run.status = star::cuda::allocate_rows(
        star::contiguous_view<const T, 2>(relevance.data, {c.rows, c.tokens}), params, out,
        nullptr);
    if (run.status != cudaSuccess) return run;
    run.status = cudaDeviceSynchronize();
    if (run.status != cudaSuccess) return run;
    run.weights = download(weights.data, c.rows * c.tokens);
    run.lambda = download(lambda.data, c.rows);
    run.entropy = download(entropy.data, c.rows);
    for (const double count : download(capped.data, c.rows))
      run.capped.push_back(static_cast<int>(count));
    return run;
  });
}

objective_run run_token_objective(const objective_case& c, element type) {
  return dispatch(type, [&]<class T>() {
    const std::array<std::int64_t, 2> dims{c.rows, c.tokens};
    const std::size_t entries = c.rows * c.tokens;
    const device_objective<T> objective(c);
    const auto loss_grad = upload<float>({c.loss_grad});
    device_buffer<star::cuda::token_objective_totals> repeat(1);
    device_buffer<float> d_log_prob(entries), d_kl(entries);
    device_buffer<float> forward_d_log_prob(entries), forward_d_kl(entries);
    fill_bytes(repeat.data, 0xff, sizeof(star::cuda::token_objective_totals));
    fill_bytes(forward_d_log_prob.data, 0xff, entries * sizeof(float));
    fill_bytes(forward_d_kl.data, 0xff, entries * sizeof(float));
    const bool has_kl = !c.kl.empty();
    const auto gradient_into = [&](float* log_prob_out, float* kl_out) {
      return star::cuda::token_objective_gradient{
          loss_grad.data, star::contiguous_view<float, 2>(log_prob_out, dims),
          star::contiguous_view<float, 2>(has_kl ? kl_out : nullptr, dims)};
    };
    objective_run run{};
    run.status = objective.forward(objective.totals.data);
    if (run.status != cudaSuccess) return run;
    run.status = objective.forward(repeat.data,
                                   gradient_into(forward_d_log_prob.data, forward_d_kl.data));
    if (run.status != cudaSuccess) return run;
    run.status = star::cuda::token_objective_backward(
        objective.inputs.view, objective.params, gradient_into(d_log_prob.data, d_kl.data),
        nullptr);
    if (run.status != cudaSuccess) return run;
    run.status = cudaDeviceSynchronize();
    if (run.status != cudaSuccess) return run;
    const auto host = copy_to_host(objective.totals.data, 1).front();
    const auto host_repeat = copy_to_host(repeat.data, 1).front();
    const unsigned finished =
        copy_to_host(reinterpret_cast<const unsigned*>(objective.workspace.data), 1).front();
    run.repeat_identical = std::memcmp(&host, &host_repeat, sizeof host) == 0 && finished == 0;
    run.loss = host.loss;
    run.policy_loss = host.policy_loss;
    run.kl_loss = host.kl_loss;
    run.clip_fraction = host.clip_fraction;
    run.outside_clip_range_fraction = host.outside_clip_range_fraction;
    run.approx_kl = host.approx_kl;
    run.d_log_prob = download(d_log_prob.data, entries);
    if (has_kl) run.d_kl = download(d_kl.data, entries);
    run.forward_gradient_identical =
        same_bits(forward_d_log_prob.data, d_log_prob.data, entries) &&
        (!has_kl || same_bits(forward_d_kl.data, d_kl.data, entries));
    return run;
  });
}

std::vector<int> objective_gradient_rejections(objective_case c) {
  c.kl.clear();
  c.beta = 0.0;
  c.kl_weighted_by_allocation = false;
  const std::array<std::int64_t, 2> dims{c.rows, c.tokens}, wider{c.rows, c.tokens + 1};
  const device_objective<float> objective(c);
  device_buffer<float> gradient(c.rows * (c.tokens + 1));
  const auto forward = [&](const star::cuda::token_objective_gradient& g) {
    return static_cast<int>(objective.forward(objective.totals.data, g));
  };
  const auto fitting = star::contiguous_view<float, 2>(gradient.data, dims);
  return {forward({nullptr, star::contiguous_view<float, 2>(gradient.data, wider), {}}),
          forward({nullptr, {}, fitting}),
          static_cast<int>(star::cuda::token_objective_backward(objective.inputs.view,
                                                                objective.params, {}, nullptr))};
}

std::array<double, 2> kl_loss_apart_and_in_place(objective_case c) {
  c.kl_weighted_by_allocation = true;
  const std::array<std::int64_t, 2> dims{c.rows, c.tokens};
  const device_objective<float> objective(c);
  device_buffer<float> d_log_prob(c.rows * c.tokens), d_kl(c.rows * c.tokens);
  const auto kl_loss_writing_d_kl_to = [&](float* d_kl_out) {
    const star::cuda::token_objective_gradient gradient{
        nullptr, star::contiguous_view<float, 2>(d_log_prob.data, dims),
        star::contiguous_view<float, 2>(d_kl_out, dims)};
    if (objective.forward(objective.totals.data, gradient) != cudaSuccess ||
        cudaDeviceSynchronize() != cudaSuccess)
      throw std::runtime_error("the objective forward failed");
    return static_cast<double>(copy_to_host(objective.totals.data, 1).front().kl_loss);
  };
  const double apart = kl_loss_writing_d_kl_to(d_kl.data);
  return {apart, kl_loss_writing_d_kl_to(objective.inputs.kl.data)};
}

}  // namespace star::test::cuda
