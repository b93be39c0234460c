// The host-side checks of the LibTorch CUDA wrappers (star/torch/cuda_op_checks.hpp), on CPU
// tensors: valid inputs of each wrapper pass, including the launchers' limits exactly, and
// every bad input is rejected with the error type and a message naming the argument. A second
// device is played by the meta device; extents beyond the limits by expanded (stride 0) views.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "require_throws.hpp"
#include "star/torch/cuda_op_checks.hpp"

namespace {

using star::libtorch::cuda_token_objective_options;

const double nan = std::numeric_limits<double>::quiet_NaN();
const double inf = std::numeric_limits<double>::infinity();
const double beyond_float32 = 1e39;   // finite as a double, infinite as a float
const double below_float32 = 1e-50;   // > 0 as a double, 0 as a float

/// A tensor on the meta device: another device than the CPU, without memory.
at::Tensor on_meta(at::IntArrayRef sizes) {
  return at::empty(sizes, at::TensorOptions().device(at::kMeta));  // sizes
}

/// Requires the check of `valid` with `modify` applied to throw `Error` naming `text`.
template <class Error, class Case, class Modify>
void require_rejects(Case valid, const Modify& modify, const std::string& text) {
  modify(valid);
  star::test::require_throws<Error>([&] { valid.check(); }, text);
}

/// Valid inputs of `accumulate_relevance_cuda`: B = 2, H = 3, N = 4 x 5, L = 7 + 9, D = 16.
struct readout_case {
  star::token_layout layout{4, 5, {{"clip", 7}, {"t5", 9}}, true};
  at::Tensor q = at::zeros({2, 3, 36, 16});   // [B, H, T, D]
  at::Tensor k = at::zeros({2, 3, 36, 16});   // [B, H, T, D]
  at::Tensor lse = at::zeros({2, 3, 36});     // [B, H, T]
  at::Tensor relevance = at::zeros({2, 20});  // [B, N]
  std::vector<std::int64_t> columns{0, 5, 15};
  std::vector<double> weights{0.5, 1.0, 0.25};
  double scale = 0.25;
  double block_weight = 1.0;

  star::joint_qk_dims check() const {
    return star::libtorch::check_accumulate_relevance_cuda(q, k, lse, layout, columns, weights,
                                                           scale, block_weight, relevance);
  }
  /// q and k of shape `sizes` (a zero-stride view: any extents, no memory).
  void set_qk(at::IntArrayRef sizes) {
    q = k = at::zeros({1, 1, 1, 1}).expand(sizes);  // sizes
  }
};

/// Valid inputs of `allocate_cuda`: B = 3 rows of N = 64.
struct allocation_case {
  at::Tensor relevance = at::rand({3, 64});  // [B, N]
  double tau = 0.5;
  std::optional<at::Tensor> lambda = at::full({3}, 0.3);  // [B]
  std::optional<double> w_max = 2.0;

  void check() const { star::libtorch::check_allocate_cuda(relevance, tau, lambda, w_max); }
};

/// Valid inputs of `token_objective_cuda`: R = 4 rows of N = 10 tokens, every optional input.
struct objective_case {
  at::Tensor log_prob = at::zeros({4, 10});      // [R, N]
  at::Tensor old_log_prob = at::zeros({4, 10});  // [R, N]
  at::Tensor allocation = at::ones({4, 10});     // [R, N]
  at::Tensor advantages = at::zeros({4});        // [R]
  at::Tensor step_weights = at::ones({4});       // [R]
  at::Tensor kl = at::zeros({4, 10});            // [R, N]
  cuda_token_objective_options options{2e-3, 0.04, true};

  void check() const {
    star::libtorch::check_token_objective_cuda(log_prob, old_log_prob, allocation, advantages,
                                               step_weights, kl, options);
  }
};

TEST_CASE("cuda op checks: accumulate_relevance_cuda accepts every kernel dtype, strided q and "
          "k, lse [B, H, T] and the launcher's limits",
          "[torch][cuda_checks]") {
  const readout_case valid;
  const auto dims = valid.check();
  REQUIRE(dims.batch == 2);
  REQUIRE(dims.heads == 3);
  REQUIRE(dims.tokens == 36);
  REQUIRE(dims.head_dim == 16);

  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    readout_case c;
    // heads interleaved, as after a projection: strided [B, H, T, D] views of [B, T, H, D]
    c.q = at::zeros({2, 36, 3, 16}, dtype).transpose(1, 2);  // [B, H, T, D]
    c.k = at::zeros({2, 36, 3, 16}, dtype).transpose(1, 2);  // [B, H, T, D]
    c.lse = at::zeros({2, 3, 36}, dtype);  // [B, H, T], any floating dtype
    c.relevance = at::Tensor();  // undefined: the wrapper makes a new map the kernel fills
    REQUIRE_NOTHROW(c.check());
  }
  readout_case text_first;
  text_first.layout.image_first = false;
  REQUIRE_NOTHROW(text_first.check());

  readout_case widest;
  widest.set_qk({2, 3, 36, 768});
  REQUIRE_NOTHROW(widest.check());
  readout_case largest;
  largest.set_qk({65535, 65535, 36, 16});
  largest.lse = at::zeros({1, 1, 1}).expand({65535, 65535, 36});  // [B, H, T]
  largest.relevance = at::Tensor();
  REQUIRE_NOTHROW(largest.check());
}

TEST_CASE("cuda op checks: accumulate_relevance_cuda rejects a bad layout, q or k",
          "[torch][cuda_checks]") {
  using star::option_error, star::shape_error, star::value_error;
  const readout_case valid;
  require_rejects<option_error>(valid, [](auto& c) { c.layout.grid_w = 0; }, "token_layout");
  require_rejects<value_error>(valid, [](auto& c) { c.q = at::Tensor(); },
                               "q: the tensor is undefined");
  require_rejects<value_error>(valid, [](auto& c) { c.k = at::Tensor(); },
                               "k: the tensor is undefined");
  require_rejects<shape_error>(valid, [](auto& c) { c.q = at::zeros({2, 3, 36}); },  // [B, H, T]
                               "q: expected rank 4");
  require_rejects<shape_error>(valid, [](auto& c) { c.set_qk({2, 3, 35, 16}); },
                               "q: expected T = layout.total_tokens()");
  require_rejects<shape_error>(valid,
                               [](auto& c) { c.k = at::zeros({2, 3, 36, 8}); },  // [B, H, T, 8]
                               "k: expected shape [B, H, T, D] (the shape of q) = "
                               "[2, 3, 36, 16], got [2, 3, 36, 8]");
  require_rejects<shape_error>(valid, [](auto& c) { c.set_qk({0, 3, 36, 16}); },
                               "q: every extent");
  require_rejects<shape_error>(valid, [](auto& c) { c.set_qk({65536, 3, 36, 16}); },
                               "q: B = 65536 is outside [1, 65535]");
  require_rejects<shape_error>(valid, [](auto& c) { c.set_qk({2, 65536, 36, 16}); },
                               "q: H = 65536 is outside [1, 65535]");
  require_rejects<shape_error>(valid, [](auto& c) { c.set_qk({2, 3, 36, 769}); },
                               "q: D = 769 is outside [1, 768]");
  require_rejects<value_error>(
      valid, [](auto& c) { c.q = c.k = at::zeros({2, 3, 36, 16}, at::kDouble); },  // [B, H, T, D]
      "q: expected float32, float16 or bfloat16, got Double");
  require_rejects<value_error>(
      valid, [](auto& c) { c.k = at::zeros({2, 3, 36, 16}, at::kHalf); },  // [B, H, T, D]
      "k: expected the dtype of q (Float), got Half");
  require_rejects<value_error>(
      valid, [](auto& c) { c.k = on_meta({2, 3, 36, 16}); },  // [B, H, T, D]
      "k: expected a tensor on the device of q (cpu), got one on meta");
}

TEST_CASE("cuda op checks: accumulate_relevance_cuda rejects a bad lse or relevance",
          "[torch][cuda_checks]") {
  using star::shape_error, star::value_error;
  const readout_case valid;
  require_rejects<value_error>(valid, [](auto& c) { c.lse = at::Tensor(); },
                               "lse: the tensor is undefined");
  // the image rows only, the shape before lse covered the whole joint sequence
  require_rejects<shape_error>(valid, [](auto& c) { c.lse = at::zeros({2, 3, 20}); },  // [B, H, N]
                               "lse: expected shape [B, H, T] = [2, 3, 36], got [2, 3, 20]");
  require_rejects<value_error>(
      valid, [](auto& c) { c.lse = at::zeros({2, 3, 36}, at::kLong); },  // [B, H, T]
      "lse: expected a floating-point tensor");
  require_rejects<value_error>(valid, [](auto& c) { c.lse = on_meta({2, 3, 36}); },  // [B, H, T]
                               "lse: expected a tensor on the device of q");
  require_rejects<shape_error>(valid, [](auto& c) { c.relevance = at::zeros({2, 36}); },  // [B, T]
                               "relevance: expected shape [B, N] = [2, 20], got [2, 36]");
  require_rejects<value_error>(
      valid, [](auto& c) { c.relevance = at::zeros({2, 20}, at::kHalf); },  // [B, N]
      "relevance: expected a float32 accumulator, got Half");
  require_rejects<value_error>(
      valid, [](auto& c) { c.relevance = at::zeros({1, 20}).expand({2, 20}); },  // [B, N]
      "relevance: its elements may overlap in memory");
  // strides ATen does not decide: row b starts one element after row b - 1
  require_rejects<value_error>(
      valid, [](auto& c) { c.relevance = at::zeros({21}).as_strided({2, 20}, {1, 1}); },  // [B, N]
      "relevance: its elements may overlap in memory");
  readout_case apart;  // strides [80, 2]: not dense (ATen finds it too hard), yet apart
  apart.relevance = at::zeros({2, 80}).slice(1, 0, 40, 2);  // [B, N]
  REQUIRE_NOTHROW(apart.check());
  require_rejects<value_error>(valid, [](auto& c) { c.relevance = on_meta({2, 20}); },  // [B, N]
                               "relevance: expected a tensor on the device of q");
}

TEST_CASE("cuda op checks: accumulate_relevance_cuda rejects bad columns, weights, scale and "
          "block weight",
          "[torch][cuda_checks]") {
  using star::option_error, star::shape_error, star::value_error;
  const readout_case valid;
  require_rejects<value_error>(valid, [](auto& c) { c.columns.clear(); },
                               "columns: the selection of text columns is empty");
  require_rejects<shape_error>(valid, [](auto& c) { c.columns[1] = 16; }, "columns: index 16");
  require_rejects<shape_error>(valid, [](auto& c) { c.columns[1] = -1; }, "columns: index -1");
  require_rejects<shape_error>(valid, [](auto& c) { c.weights.pop_back(); },
                               "weights: expected shape [S] = [3] (one per column), got [2]");
  for (const double weight : {nan, inf, -0.5, beyond_float32}) {
    INFO("weight " << weight);
    require_rejects<value_error>(valid, [&](auto& c) { c.weights[2] = weight; },
                                 "weights: entry 2");
  }
  for (const double scale : {0.0, -0.25, nan, inf, beyond_float32, below_float32}) {
    INFO("scale " << scale);
    require_rejects<option_error>(valid, [&](auto& c) { c.scale = scale; }, "scale: expected");
  }
  for (const double block_weight : {nan, -inf, beyond_float32}) {
    INFO("block_weight " << block_weight);
    require_rejects<option_error>(valid, [&](auto& c) { c.block_weight = block_weight; },
                                  "block_weight: expected a finite float32 value");
  }
}

TEST_CASE("cuda op checks: allocate_cuda accepts every kernel dtype, N = 4096 and the optional "
          "inputs left out",
          "[torch][cuda_checks]") {
  const allocation_case valid;
  REQUIRE_NOTHROW(valid.check());
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    allocation_case c;
    c.relevance = at::rand({3, 4096}).to(dtype);     // [B, N]
    c.lambda = at::full({3}, 0.5, at::kDouble);      // [B], converted by the wrapper
    c.w_max = 1.0;
    REQUIRE_NOTHROW(c.check());
  }
  allocation_case plain;
  plain.lambda = std::nullopt;
  plain.w_max = std::nullopt;
  REQUIRE_NOTHROW(plain.check());
}

TEST_CASE("cuda op checks: allocate_cuda rejects a bad relevance, tau, lambda or w_max",
          "[torch][cuda_checks]") {
  using star::option_error, star::shape_error, star::value_error;
  const allocation_case valid;
  require_rejects<value_error>(valid, [](auto& c) { c.relevance = at::Tensor(); },
                               "relevance: the tensor is undefined");
  require_rejects<shape_error>(valid, [](auto& c) { c.relevance = at::zeros({64}); },  // [N]
                               "relevance: expected rank 2 [B, N], got shape [64]");
  require_rejects<shape_error>(valid, [](auto& c) { c.relevance = at::zeros({0, 64}); },  // [0, N]
                               "relevance: B = 0 is outside");
  require_rejects<shape_error>(valid, [](auto& c) { c.relevance = at::zeros({3, 0}); },  // [B, 0]
                               "relevance: N = 0 is outside [1, 4096]");
  require_rejects<shape_error>(valid,
                               [](auto& c) { c.relevance = at::zeros({3, 4097}); },  // [B, N]
                               "relevance: N = 4097 is outside [1, 4096]");
  require_rejects<shape_error>(
      valid, [](auto& c) { c.relevance = at::zeros({1, 1}).expand({2147483648, 1}); },  // [B, N]
      "relevance: B = 2147483648 is outside [1, 2147483647]");
  require_rejects<value_error>(
      valid, [](auto& c) { c.relevance = at::zeros({3, 64}, at::kDouble); },  // [B, N]
      "relevance: expected float32, float16 or bfloat16");
  for (const double tau : {0.0, -1.0, nan, inf, beyond_float32, below_float32}) {
    INFO("tau " << tau);
    require_rejects<option_error>(valid, [&](auto& c) { c.tau = tau; }, "tau: expected");
  }
  require_rejects<value_error>(valid, [](auto& c) { c.lambda = at::Tensor(); },
                               "lambda: the tensor is undefined");
  require_rejects<shape_error>(valid, [](auto& c) { c.lambda = at::zeros({3, 1}); },  // [B, 1]
                               "lambda: expected shape [B] = [3], got [3, 1]");
  require_rejects<value_error>(valid, [](auto& c) { c.lambda = at::zeros({3}, at::kInt); },  // [B]
                               "lambda: expected a floating-point tensor");
  require_rejects<value_error>(valid, [](auto& c) { c.lambda = on_meta({3}); },  // [B]
                               "lambda: expected a tensor on the device of relevance");
  for (const double w_max : {0.5, 0.0, nan, inf, beyond_float32}) {
    INFO("w_max " << w_max);
    require_rejects<option_error>(valid, [&](auto& c) { c.w_max = w_max; }, "w_max: expected");
  }
}

TEST_CASE("cuda op checks: token_objective_cuda accepts every kernel dtype and the optional "
          "inputs left out",
          "[torch][cuda_checks]") {
  const objective_case valid;
  REQUIRE_NOTHROW(valid.check());
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    objective_case c;
    c.log_prob = at::zeros({4, 10}, dtype);  // [R, N]
    c.old_log_prob = at::zeros({4, 10}, at::kDouble);  // [R, N], converted by the wrapper
    c.step_weights = at::Tensor();
    c.kl = at::Tensor();
    c.options.beta = 0.0;
    REQUIRE_NOTHROW(c.check());
  }
}

TEST_CASE("cuda op checks: token_objective_cuda rejects bad tensors", "[torch][cuda_checks]") {
  using star::option_error, star::shape_error, star::value_error;
  const objective_case valid;
  require_rejects<value_error>(valid, [](auto& c) { c.log_prob = at::Tensor(); },
                               "log_prob: the tensor is undefined");
  require_rejects<shape_error>(valid, [](auto& c) { c.log_prob = at::zeros({40}); },  // [R * N]
                               "log_prob: expected rank 2 [R, N], got shape [40]");
  require_rejects<shape_error>(valid, [](auto& c) { c.log_prob = at::zeros({0, 10}); },  // [0, N]
                               "log_prob: R = 0 is outside");
  require_rejects<shape_error>(valid, [](auto& c) { c.log_prob = at::zeros({4, 0}); },  // [R, 0]
                               "log_prob: expected at least one token, got shape [R, N] = "
                               "[4, 0]");
  require_rejects<value_error>(
      valid, [](auto& c) { c.log_prob = at::zeros({4, 10}, at::kDouble); },  // [R, N]
      "log_prob: expected float32, float16 or bfloat16");
  // every tensor but log_prob: presence (kl and step_weights are optional), shape, dtype, device
  using member = at::Tensor objective_case::*;
  const std::vector<std::pair<std::string, member>> companions{
      {"old_log_prob", &objective_case::old_log_prob},
      {"allocation", &objective_case::allocation},
      {"advantages", &objective_case::advantages},
      {"step_weights", &objective_case::step_weights},
      {"kl", &objective_case::kl}};
  for (const auto& companion : companions) {
    const std::string& arg = companion.first;
    const member tensor = companion.second;
    INFO("argument " << arg);
    const bool per_row = arg == "advantages" || arg == "step_weights";
    if (arg != "kl" && arg != "step_weights")
      require_rejects<value_error>(valid, [&](auto& c) { c.*tensor = at::Tensor(); },
                                   arg + ": the tensor is undefined");
    const std::vector<std::int64_t> sizes = per_row ? std::vector<std::int64_t>{4}
                                                    : std::vector<std::int64_t>{4, 10};
    const std::string expected = per_row ? "[R] = [4], got [4, 9]"
                                         : "[R, N] like log_prob = [4, 10], got [4, 9]";
    require_rejects<shape_error>(valid, [&](auto& c) { c.*tensor = at::zeros({4, 9}); },  // [R, 9]
                                 arg + ": expected shape " + expected);
    require_rejects<value_error>(
        valid, [&](auto& c) { c.*tensor = at::zeros(sizes, at::kInt); },  // sizes
        arg + ": expected a floating-point tensor");
    require_rejects<value_error>(valid, [&](auto& c) { c.*tensor = on_meta(sizes); },  // sizes
                                 arg + ": expected a tensor on the device of log_prob");
  }
  require_rejects<option_error>(valid, [](auto& c) { c.kl = at::Tensor(); },
                                "kl: beta = 0.04 > 0 needs the per-token KL [R, N]");
}

TEST_CASE("cuda op checks: token_objective_cuda rejects options outside their range, in "
          "float32 too",
          "[torch][cuda_checks]") {
  const objective_case valid;
  for (const double clip : {0.0, 1.0, -0.1, 1.0 - 1e-10, below_float32, nan, beyond_float32}) {
    INFO("token_clip_range " << clip);
    require_rejects<star::option_error>(valid,
                                        [&](auto& c) { c.options.token_clip_range = clip; },
                                        "cuda_token_objective_options.token_clip_range");
  }
  for (const double beta : {-1.0, nan, inf, beyond_float32}) {
    INFO("beta " << beta);
    require_rejects<star::option_error>(valid, [&](auto& c) { c.options.beta = beta; },
                                        "cuda_token_objective_options.beta");
  }
}

TEST_CASE("cuda op checks: a rejected value is printed in full precision",
          "[torch][cuda_checks]") {
  // 1 - 1e-10 rounds to 1 in float32; rounded to 6 digits, the message would read "got 1"
  require_rejects<star::option_error>(
      objective_case{}, [](auto& c) { c.options.token_clip_range = 1.0 - 1e-10; },
      "token_clip_range: expected a value in (0, 1) (in float32 too), got 0.9999999999");
}

}  // namespace
