#pragma once
// The map read-out of one joint block (docs/math.md §3) in four variants:
// - composite: star's generic operators over star::libtorch::backend with the block's LSE
//   (what a LibTorch trainer gets without CUDA kernels, on either device);
// - fused: the fused CUDA kernel (star::libtorch::accumulate_relevance_cuda);
// - fused_kernels: the same kernel launched directly on buffers made beforehand;
// - naive: plain LibTorch that materialises the full [B, H, N, T] softmax.

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sd35_block.hpp"
#include "star/attention/text_selection.hpp"
#include "star/torch/attention_lse.hpp"
#include "star/torch/backend.hpp"
#include "timing.hpp"
#ifdef STAR_BENCH_FUSED
#include "star/torch/cuda_ops.hpp"
#endif

namespace star::bench {

/// Everything one read-out needs, made before timing.
struct readout_inputs {
  at::Tensor q, k;           // [B, H, T, D] as the block projects them
  at::Tensor lse;            // [B, H, T] natural-log row LSE, float32
  text_selection selection;  // S text columns, equal weights
  at::Tensor text_index;     // [S] joint positions of the columns, int64
  at::Tensor weights;        // [S] float32
};

/// `selected` CLIP columns after BOS (1, 4, 7, ...) with equal weights.
inline readout_inputs make_readout_inputs(const sd35m::projected& p, const at::Tensor& lse,
                                          std::int64_t selected) {
  readout_inputs in{p.q, p.k, lse, {}, {}, {}};
  std::vector<std::int64_t> positions;
  for (std::int64_t j = 0; j < selected; ++j) {
    in.selection.indices.push_back(1 + 3 * j);
    in.selection.weights.push_back(1.0 / static_cast<double>(selected));
    positions.push_back(sd35m::layout().text_begin() + 1 + 3 * j);
  }
  const auto on_device = at::TensorOptions().device(p.q.device());
  in.text_index = at::tensor(positions, on_device.dtype(at::kLong));  // [S]
  in.weights = at::full({selected}, 1.0 / static_cast<double>(selected),
                        on_device.dtype(at::kFloat));  // [S]
  return in;
}

/// Least traffic of a read-out: the image queries, the selected keys, the image LSE, the map.
inline double readout_bytes(const readout_inputs& in) {
  const double batch_heads = static_cast<double>(in.q.size(0) * in.q.size(1));
  const double image = static_cast<double>(sd35m::layout().image_tokens());
  const double selected = static_cast<double>(in.selection.indices.size());
  return batch_heads * sd35m::head_dim * (image + selected) * in.q.element_size() +
         sizeof(float) * (batch_heads * image + in.q.size(0) * image);
}

/// The image rows of a [B, H, T, ...] tensor: [B, H, N, ...].
inline at::Tensor image_rows(const at::Tensor& t) {
  const auto& layout = sd35m::layout();
  const std::int64_t begin = layout.image_begin(), end = begin + layout.image_tokens();
  return t.slice(2, begin, end);  // [B, H, N, ...]
}

/// The read-out with the full softmax over all T keys materialised.
inline at::Tensor naive_readout(const readout_inputs& in) {
  const auto logits =
      at::matmul(image_rows(in.q), in.k.transpose(2, 3)) * sd35m::scale;  // [B, H, N, T]
  const auto probabilities = at::softmax(logits, -1, at::kFloat);         // [B, H, N, T]
  const auto selected = probabilities.index_select(3, in.text_index);     // [B, H, N, S]
  return at::matmul(selected.mean(1), in.weights);                        // [B, N]
}

#ifdef STAR_BENCH_FUSED
/// The fused read-out launched directly on buffers made beforehand, overwriting the relevance as
/// the wrapper does without an accumulator: what the kernel costs on a busy stream without the
/// wrapper's per-call work (its argument checks and allocations; the launcher's own checks
/// remain).
inline timed_call fused_readout_kernels(const readout_inputs& in) {
  const at::Device device = in.q.device();
  const std::int64_t batch = in.q.size(0), heads = in.q.size(1);
  const std::int64_t image = sd35m::layout().image_tokens();
  const auto options = at::TensorOptions().device(device).dtype(at::kFloat);
  const at::Tensor relevance = at::empty({batch, image}, options);  // [B, N]
  const std::size_t bytes = star::cuda::relevance_workspace_bytes(batch, heads, image);
  const at::Tensor workspace =
      at::empty({static_cast<std::int64_t>(bytes)}, options.dtype(at::kByte));  // [bytes]
  const std::vector<float> weights(in.selection.weights.begin(), in.selection.weights.end());
  const cudaStream_t stream = libtorch::cuda_detail::current_stream(device);
  return {"fused_kernels", [=, &in] {
            libtorch::cuda_detail::dispatch(in.q.scalar_type(), "q", [&]<class A>() {
              const auto inputs = libtorch::cuda_detail::readout_inputs_of<A>(
                  in.q, in.k, in.lse, in.selection.indices, weights, sd35m::scale, 1.0, false,
                  device);
              const auto target = libtorch::view_of<float, 2>(relevance, "relevance", device);
              libtorch::cuda_detail::check(
                  star::cuda::accumulate_relevance(inputs, sd35m::layout(), target, {},
                                                   workspace.data_ptr(), bytes, stream),
                  "accumulate_relevance");
            });
          }};
}
#endif

/// The read-out variants available on `be`'s device.
inline std::vector<timed_call> readout_variants(const readout_inputs& in,
                                                const libtorch::backend& be) {
  std::vector<timed_call> variants;
  variants.push_back({"composite", [&in, &be] {
                        libtorch::selected_block_relevance(be, in.q, in.k, sd35m::layout(),
                                                           in.selection, in.lse,
                                                           {.scale = sd35m::scale});  // [B, N]
                      }});
  variants.push_back({"naive_full_softmax", [&in] { naive_readout(in); }});
#ifdef STAR_BENCH_FUSED
  if (be.device().is_cuda())
    variants.push_back({"fused", [&in] {
                          libtorch::accumulate_relevance_cuda(
                              in.q, in.k, in.lse, sd35m::layout(), in.selection.indices,
                              in.selection.weights, sd35m::scale);  // [B, N]
                        }});
  if (be.device().is_cuda()) variants.push_back(fused_readout_kernels(in));
#endif
  return variants;
}

}  // namespace star::bench
