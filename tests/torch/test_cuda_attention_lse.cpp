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
