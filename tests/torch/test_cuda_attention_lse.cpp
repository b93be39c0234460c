// I3 on CUDA: the body of the CPU attention-with-LSE test with device = CUDA (label cuda).
#include <catch2/catch.hpp>

#include "attention_lse_checks.hpp"

TEST_CASE("I3 attention_with_lse on CUDA: output and LSE equal an explicit softmax",
          "[torch][attention][invariant][cuda]") {
  REQUIRE(at::hasCUDA());
  const auto expected = STAR_TORCH_VERSION_AT_LEAST(2, 1)
                            ? star::libtorch::attention_lse_source::fused_cuda_efficient
                            : star::libtorch::attention_lse_source::chunked;
  star::test::check_attention_with_lse(at::Device(at::kCUDA, 0), expected);
}

TEST_CASE("libtorch backend on CUDA: tensors live on the device and round-trip",
          "[torch][cuda]") {
  const star::libtorch::backend be(at::Device(at::kCUDA, 0));
  const auto x = be.from_host(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});  // [2, 3]
  REQUIRE(x.is_cuda());
  star::test::require_close(be.to_host(be.sum(be.mul(x, x), {1}, false)), {14.0, 77.0}, 1e-6);
  const auto idx = be.index_select(x, 1, std::vector<std::int64_t>{2, 0});  // [2, 2]
  star::test::require_close(be.to_host(idx), {3.0, 1.0, 6.0, 4.0}, 0.0);
}

TEST_CASE("I3 attention_with_lse on CUDA in float16 and bfloat16: the kernel SDPA itself picks "
          "gives an LSE and output equal to an explicit softmax",
          "[torch][attention][invariant][cuda]") {
  REQUIRE(at::hasCUDA());
  using source = star::libtorch::attention_lse_source;
  const auto fallback = STAR_TORCH_VERSION_AT_LEAST(2, 2)   ? source::fused_cuda_flash
                        : STAR_TORCH_VERSION_AT_LEAST(2, 1) ? source::fused_cuda_efficient
                                                            : source::chunked;
  at::manual_seed(901);
  // a small case, and the SD3.5-Medium joint sequence (1024 image + 333 text tokens)
  for (const std::int64_t tokens : {40, 1357})
    for (const auto dtype : {at::kHalf, at::kBFloat16}) {
      INFO("dtype " << c10::toString(dtype) << ", tokens " << tokens);
      const auto options = at::TensorOptions().device(at::kCUDA).dtype(dtype);
      const auto q = at::randn({1, 2, tokens, 64}, options);  // [B, H, T, D]
      const auto k = at::randn({1, 2, tokens, 64}, options);  // [B, H, T, D]
      const auto v = at::randn({1, 2, tokens, 64}, options);  // [B, H, T, D]
      const auto preferred = star::libtorch::sdpa_cuda_source(q, k, v, 0.125);
      // from 2.5 on, SDPA names a fused kernel for these inputs on sm80 and newer (bfloat16
      // needs them; the GPU check runs on an H100 or H200)
      REQUIRE(preferred.has_value() == STAR_TORCH_VERSION_AT_LEAST(2, 5));
      const auto result =
          star::libtorch::attention_with_lse(q, k, v, 0.125);  // [B, H, T, D], lse [B, H, T]
      INFO("SDPA's kernel " << (preferred ? star::libtorch::source_name(*preferred) : "none")
                            << ", used " << star::libtorch::source_name(result.source));
      REQUIRE(result.source == preferred.value_or(fallback));
      REQUIRE(result.lse.sizes() == at::IntArrayRef({1, 2, tokens}));
      // the explicit softmax in double from the same rounded inputs
      const auto want =
          star::test::explicit_attention(q, k, v, 0.125);  // [B, H, T, D], lse [B, H, T]
      const double lse_error =
          (result.lse.to(at::kDouble) - want.lse).abs().max().item<double>();
      const double output_error =
          (result.output.to(at::kDouble) - want.output).abs().max().item<double>();
      INFO("max |lse error| " << lse_error << ", max |output error| " << output_error);
      REQUIRE(lse_error < 1e-3);     // float32 accumulation inside the kernel
      REQUIRE(output_error < 2e-2);  // the output is rounded to the input dtype
    }
}
