// CUDA benchmarks at SD3.5-Medium shapes (24 heads, head dim 64, 1024 image + 333 text tokens,
// 10 steps): fused read-out vs a naive LibTorch read-out that materialises the full softmax,
// fused allocation and token objective (forward + backward), device bandwidth (a large
// device-to-device copy) and an SD3.5-M joint attention block forward as yardsticks. A plain
// timing loop (CUDA-synchronised wall clock, median of repeats) writes one JSON document to
// the file given as argv[1] (stdout when absent).

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "star/torch/cuda_ops.hpp"

namespace {

/// Median seconds of `repeats` timed calls of `f` after 3 warm-up calls.
double median_seconds(const std::function<void()>& f, int repeats = 15) {
  for (int i = 0; i < 3; ++i) f();
  torch::cuda::synchronize();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    torch::cuda::synchronize();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct record {
  std::string name;
  double seconds, bytes;  // bytes: the minimal traffic of the operation (0: not a bandwidth figure)
};

}  // namespace

int main(int argc, char** argv) {
  if (!at::hasCUDA()) {
    std::printf("{\"error\": \"no CUDA device\"}\n");
    return 1;
  }
  at::NoGradGuard no_grad;
  const auto f32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  const auto bf16 = f32.dtype(at::kBFloat16);
  const std::int64_t heads = 24, dim = 64, image = 1024, text = 333, tokens = image + text,
                     hidden = heads * dim, steps = 10;
  const auto layout = star::token_layout::sd3(32, 32, 256);
  std::vector<record> records;

  // bandwidth: copy 1 GiB device to device (read + write)
  {
    const at::Tensor src = at::empty({1 << 28}, f32), dst = at::empty({1 << 28}, f32);
    const double seconds = median_seconds([&] { dst.copy_(src); });
    records.push_back({"bandwidth_copy_1GiB", seconds, 2.0 * src.numel() * 4});
  }
  for (const std::int64_t batch : {8, 32}) {
    const std::string b = "/B" + std::to_string(batch);
    // joint attention block forward (qkv projections, SDPA, out projection), bf16
    const at::Tensor x = at::randn({batch, tokens, hidden}, bf16);
    const at::Tensor w_qkv = at::randn({3 * hidden, hidden}, bf16) * 0.02, w_out = at::randn({hidden, hidden}, bf16) * 0.02;
    at::Tensor q, k;
    const auto block = [&] {
      const auto qkv = at::linear(x, w_qkv).view({batch, tokens, 3, heads, dim}).permute({2, 0, 3, 1, 4});
      q = qkv[0], k = qkv[1];
#if TORCH_VERSION_MAJOR >= 2
      const auto attended = at::scaled_dot_product_attention(q, k, qkv[2]);  // [B, H, T, D]
#else
      const auto attended = at::matmul(at::softmax(at::matmul(q, k.transpose(2, 3)) * 0.125, -1), qkv[2]);
#endif
      return at::linear(attended.transpose(1, 2).reshape({batch, tokens, hidden}), w_out);
    };
    const double block_seconds = median_seconds([&] { block(); });
    records.push_back({"sd35m_joint_block_forward" + b, block_seconds, 0});
    block();
    const at::Tensor lse =
        at::logsumexp(at::matmul(q.slice(2, 0, image).to(at::kFloat), k.to(at::kFloat).transpose(2, 3)) / 8.0, -1);
    for (const std::int64_t selected : {1, 16}) {
      std::vector<std::int64_t> columns(selected);
      for (std::int64_t j = 0; j < selected; ++j) columns[j] = 3 + 7 * j;
      const std::vector<double> weights(selected, 1.0 / selected);
      const std::string s = b + "/S" + std::to_string(selected);
      const double fused = median_seconds([&] {
        star::libtorch::accumulate_relevance_cuda(q, k, lse, layout, columns, weights, 0.125);
      });
      records.push_back({"readout_fused" + s, fused,
                         double(batch * heads * image * dim * 2 + batch * heads * image * 4)});
      const at::Tensor index = at::tensor(columns, f32.dtype(at::kLong)) + image;
      const double naive = median_seconds([&] {
        const auto p = at::softmax(at::matmul(q.slice(2, 0, image), k.transpose(2, 3)) * 0.125, -1);  // [B, H, N, T]
        at::matmul(p.index_select(3, index).mean(1), at::tensor(std::vector<float>(weights.begin(), weights.end()), f32).to(p.dtype()));
      });
      records.push_back({"readout_naive_full_softmax" + s, naive, 0});
    }
    // allocation + token objective over the batch's rollouts x steps rows
    const std::int64_t rows = batch * steps;
    const at::Tensor relevance = at::rand({rows, image}, f32);
    const double allocation = median_seconds([&] { star::libtorch::allocate_cuda(relevance, 1.0, std::nullopt, 4.0); });
    records.push_back({"allocation_fused" + b, allocation, double(rows * image * 8)});
    const at::Tensor old_lp = at::randn({rows, image}, f32), lp = (old_lp + 1e-3).requires_grad_(true);
    const at::Tensor w = at::ones({rows, image}, f32), adv = at::randn({rows}, f32);
    const double objective = median_seconds([&] {
      at::AutoGradMode grad(true);
      star::libtorch::token_objective_cuda(lp, old_lp, w, adv)[0].backward();
    });
    records.push_back({"token_objective_fwd_bwd_fused" + b, objective, double(rows * image * 4 * 5)});
    records.push_back({"ratio_readout_S16_over_block" + b,
                       records[records.size() - 4].seconds / block_seconds, -1});
    records.push_back({"ratio_allocation_objective_over_24_blocks" + b,
                       (allocation + objective) / (24 * block_seconds), -1});
  }
  const double bandwidth = records[0].bytes / records[0].seconds;
  std::string json = "{\"device\": \"" + std::string(at::cuda::getDeviceProperties(0)->name) +
                     "\", \"bandwidth_bytes_per_s\": " + std::to_string(bandwidth) + ", \"results\": [\n";
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    json += "  {\"name\": \"" + r.name + "\", " +
            (r.bytes < 0 ? "\"ratio\": " + std::to_string(r.seconds)
                         : "\"seconds\": " + std::to_string(r.seconds) +
                               (r.bytes > 0 ? ", \"fraction_of_bandwidth\": " +
                                                  std::to_string(r.bytes / r.seconds / bandwidth)
                                            : "")) +
            "}" + (i + 1 < records.size() ? ",\n" : "\n");
  }
  json += "]}\n";
  std::fputs(json.c_str(), stdout);
  if (argc > 1)
    if (FILE* out = std::fopen(argv[1], "w")) std::fputs(json.c_str(), out), std::fclose(out);
  return 0;
}
