// The fused CUDA kernels against the reference backend on seeded random inputs, in float32,
// float16 and bfloat16. Self-contained harness (no Catch2): `star_cuda_kernel_tests <case>`
// runs one case and exits non-zero on a failed check; ctest registers one test per case.

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "device_runs.hpp"
#include "star/allocation/allocate.hpp"
#include "star/attention/full_softmax.hpp"
#include "star/attention/probabilities.hpp"
#include "star/attention/relevance.hpp"
#include "star/attention/row_lse.hpp"
#include "star/backends/reference.hpp"
#include "star/core/kernel_limits.hpp"
#include "star/objective/policy_gradient.hpp"
#include "star/objective/policy_objective.hpp"
#include "support/random.hpp"

namespace {

using namespace star::test::cuda;
using star::reference_backend;

int failures = 0;

/// Records a failure unless `condition`.
void check(bool condition, const std::string& what) {
  if (!condition) {
    ++failures;
    std::printf("FAILED: %s\n", what.c_str());
  }
}

/// Records a failure unless every |got - want| <= tol (1 + |want|); prints the worst entry.
void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol,
                 const std::string& what) {
  if (got.size() != want.size()) {
    check(false,
          what + ": size " + std::to_string(got.size()) + " != " + std::to_string(want.size()));
    return;
  }
  double worst = 0.0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(got[i] - want[i]) / (1.0 + std::abs(want[i]));
    if (!(err <= worst)) worst = std::isnan(err) ? INFINITY : err, at = i;
  }
  std::printf("  %-60s worst rel err %.3g (tol %.3g)\n", what.c_str(), worst, tol);
  check(worst <= tol, what + ": index " + std::to_string(at) + " got " +
                          std::to_string(got.empty() ? 0.0 : got[at]) + " want " +
                          std::to_string(want.empty() ? 0.0 : want[at]));
}

void check_close(double got, double want, double tol, const std::string& what) {
  check_close(std::vector<double>{got}, std::vector<double>{want}, tol, what);
}

/// Float accumulation tolerance of each element type (inputs are rounded identically on both
/// sides, so only the arithmetic differs).
double tolerance(element type) { return type == element::f32 ? 2e-5 : 2e-3; }

constexpr element all_types[] = {element::f32, element::f16, element::bf16};

// ---------------------------------------------------------------- relevance read-out

/// The [B, H, T] LSE the launcher takes, from the [B, H, N] LSE of the image rows; the text
/// rows are NaN, so a kernel that read them would fail the checks.
std::vector<double> joint_rows_lse(const std::vector<double>& image_lse, std::int64_t batch_heads,
                                   const star::token_layout& layout) {
  const std::int64_t tokens = layout.total_tokens(), image = layout.image_tokens();
  std::vector<double> joint(batch_heads * tokens, NAN);
  for (std::int64_t bh = 0; bh < batch_heads; ++bh)
    for (std::int64_t n = 0; n < image; ++n)
      joint[bh * tokens + layout.image_begin() + n] = image_lse[bh * image + n];
  return joint;
}

/// Elements before q's and k's first ones, moving their pointers off 16-byte alignment.
struct qk_offsets {
  std::int64_t q = 0, k = 0;
  bool k_reversed = false;  // k read through a negative token stride
};

/// Read-out of random q, k against reference attention_probabilities + relevance_map, float16
/// and bfloat16 on both kernels (tensor cores on sm_80+, and CUDA cores). Where `head_dim` is
/// a multiple of 16 bytes' worth of elements (8 for float16 / bfloat16, 4 for float32) and
/// the offsets are 0, the kernels read rows with 16-byte loads; otherwise element by element.
/// Each kernel runs twice, the second time without the probabilities output: its R must have
/// the same bits (one fixed order of summation, and nothing depends on that output); and a
/// third time overwriting an R of NaNs, which must give the map alone.
void readout_matches_reference(const star::token_layout& layout, std::vector<std::int64_t> columns,
                               std::int64_t head_dim, std::uint64_t seed, qk_offsets offsets = {},
                               std::int64_t heads = 3) {
  const reference_backend be{};
  const std::int64_t batch = 2, tokens = layout.total_tokens(),
                     image = layout.image_tokens(), selected = columns.size();
  const auto qk_count = static_cast<std::size_t>(batch * heads * tokens * head_dim);
  const std::vector<double> weights = star::test::uniform(columns.size(), seed + 2, 0.1, 1.0);
  const std::vector<double> relevance_in = star::test::uniform(batch * image, seed + 3, 0.0, 1.0);
  for (const element type : all_types) {
    std::printf(" read-out %s, S = %lld, D = %lld, seed %llu\n", name_of(type).c_str(),
                static_cast<long long>(selected), static_cast<long long>(head_dim),
                static_cast<unsigned long long>(seed));
    const auto q_host = rounded(star::test::normal(qk_count, seed, 0.0, 1.5), type);
    const auto k_host = rounded(star::test::normal(qk_count, seed + 1, 0.0, 1.5), type);
    const star::shape qk_shape{batch, heads, tokens, head_dim};
    const auto q = be.from_host(q_host, qk_shape);  // [B, H, T, D]
    const auto k = be.from_host(k_host, qk_shape);  // [B, H, T, D]
    const auto lse = star::image_row_lse(be, q, k, layout);  // [B, H, N]
    const auto probs =
        star::attention_probabilities(be, q, k, layout, columns, lse);  // [B, H, N, S]
    const auto map = star::relevance_map(be, probs, weights);  // [B, N]
    const double block_weight = 0.25, scale = 1.0 / std::sqrt(double(head_dim));

    std::vector<double> expected = be.to_host(map), expected_alone = expected;
    for (std::size_t i = 0; i < expected.size(); ++i) {
      expected_alone[i] = block_weight * expected[i];
      expected[i] = relevance_in[i] + expected_alone[i];
    }
    const readout_case c{batch,   heads,   head_dim,
                         layout,  q_host,  k_host,
                         joint_rows_lse(be.to_host(lse), batch * heads, layout),
                         columns, weights, scale,
                         block_weight,     relevance_in};
    for (const readout_path path : {readout_path::automatic, readout_path::cuda_cores}) {
      if (type == element::f32 && path == readout_path::cuda_cores) continue;  // the same run
      const std::string what =
          name_of(type) + (path == readout_path::cuda_cores ? " (CUDA cores)" : "");
      readout_options options{.q_offset = offsets.q, .k_offset = offsets.k,
                              .k_reversed = offsets.k_reversed, .path = path};
      const readout_run run = run_readout(c, type, options);
      check(run.status == 0, "read-out launch status " + std::to_string(run.status));
      if (run.status != 0) continue;
      check_close(run.probabilities, be.to_host(probs), tolerance(type), "probabilities " + what);
      check_close(run.relevance, expected, tolerance(type), "relevance " + what);
      options.probabilities = false;
      const readout_run again = run_readout(c, type, options);
      check(again.status == 0 && again.relevance == run.relevance,
            "relevance " + what + " without the probabilities output: the same bits");
      options.overwrite = true;
      const readout_run alone = run_readout(c, type, options);
      check(alone.status == 0, "overwriting read-out launch status");
      check_close(alone.relevance, expected_alone, tolerance(type),
                  "overwritten relevance " + what);
    }
  }
}

void test_readout() {
  // Where the device allows the tensor-core kernel, 16-bit types must get it (otherwise
  // "automatic" would test the CUDA-core kernel twice).
  const readout_kernel_choice choice = readout_kernel_on_this_device();
  std::printf(" %s: 16-bit read-out on %s\n", choice.device.c_str(),
              choice.tensor_cores ? "tensor cores" : "CUDA cores");
  check(choice.tensor_cores == choice.tensor_cores_expected,
        "16-bit read-out kernel choice on " + choice.device);
  // 30 image rows: one CUDA-core tile of 64 rows, most of it past N; one tensor-core block of
  // 32 rows, its last 2 past N
  readout_matches_reference(star::token_layout::sd3(6, 5, 12), {0, 3, 80, 88}, 40, 11);
  // D = 13: element-wise loads, a partial last slice of D
  readout_matches_reference(star::token_layout::sd3(6, 5, 12), {0, 3, 80, 88}, 13, 13);
  // D = 12: 16-byte loads in float32, element-wise in float16 / bfloat16
  readout_matches_reference(star::token_layout::sd3(6, 5, 12), {0, 3, 80, 88}, 12, 15);
  // q one element past an aligned address: element-wise loads in every type
  readout_matches_reference(star::token_layout::sd3(6, 5, 12), {0, 3, 80, 88}, 40, 16, {.q = 1});
  // only k off alignment: the tensor-core kernel loads both element by element
  readout_matches_reference(star::token_layout::sd3(6, 5, 12), {0, 3, 80, 88}, 40, 18, {.k = 1});
  // k's tokens last to first in memory (a negative stride): CUDA cores in every type
  readout_matches_reference(star::token_layout::sd3(6, 5, 12), {0, 3, 80, 88}, 40, 20,
                            {.k_reversed = true});
  // more than one chunk of 16 columns, text block first
  star::token_layout text_first{4, 7, {{"clip", 9}, {"t5", 21}}, false};
  std::vector<std::int64_t> many(21);
  std::iota(many.begin(), many.end(), 5);
  readout_matches_reference(text_first, many, 40, 12);
  // 300 image rows: 5 CUDA-core tiles of 64 rows in 2 blocks (of up to 4 tiles), 10
  // tensor-core blocks of 32 rows; the last tile and the last block partial
  readout_matches_reference(star::token_layout::sd3(20, 15, 4), {1, 2, 77, 80}, 64, 14);
  // 11 heads (more than the 8 warps of a tensor-core block), D = 136 (three passes of 64, the
  // last one partial), 9 columns (a second, partial n8 tile)
  readout_matches_reference(star::token_layout::sd3(6, 7, 10), {0, 1, 2, 3, 4, 5, 6, 7, 9}, 136,
                            17, {}, 11);
  // the largest head dimension the launcher takes (12 passes of 64)
  readout_matches_reference(star::token_layout::sd3(3, 2, 6), {0, 5},
                            star::cuda::max_readout_head_dim, 19);
}

/// I3: with every text column selected (weight 1) and the LSE of the whole row, R equals the
/// text mass of the explicit softmax; adding the image mass gives 1.
void test_readout_full_softmax() {
  const reference_backend be{};
  const auto layout = star::token_layout::sd3(4, 4, 8);
  const std::int64_t batch = 1, heads = 2, head_dim = 16, tokens = layout.total_tokens(),
                     image = layout.image_tokens(), text = layout.text_tokens();
  const star::shape qk_shape{batch, heads, tokens, head_dim};
  const auto count = static_cast<std::size_t>(batch * heads * tokens * head_dim);
  const auto q_host = star::test::normal(count, 21), k_host = star::test::normal(count, 22);
  const auto q = be.from_host(q_host, qk_shape);  // [B, H, T, D]
  const auto k = be.from_host(k_host, qk_shape);  // [B, H, T, D]
  const auto full = be.to_host(star::full_attention_image_rows(be, q, k, layout));  // [B, H, N, T]
  std::vector<std::int64_t> columns(text);
  std::iota(columns.begin(), columns.end(), 0);
  const std::vector<double> ones(text, 1.0);
  const readout_run run =
      run_readout({batch, heads, head_dim, layout, q_host, k_host,
                   joint_rows_lse(be.to_host(star::image_row_lse(be, q, k, layout)),
                                  batch * heads, layout),
                   columns, ones,
                   1.0 / std::sqrt(double(head_dim)), 1.0, std::vector<double>(image, 0.0)},
                  element::f32);
  check(run.status == 0, "read-out launch status");
  if (run.status != 0) return;
  std::vector<double> text_mass(image, 0.0), row_sum(heads * image, 0.0);
  for (std::int64_t h = 0; h < heads; ++h)
    for (std::int64_t n = 0; n < image; ++n) {
      for (std::int64_t t = 0; t < tokens; ++t) {
        const double p = full[(h * image + n) * tokens + t];
        if (t >= layout.text_begin()) text_mass[n] += p / heads;
      }
      for (std::int64_t t = 0; t < layout.text_begin(); ++t)
        row_sum[h * image + n] += full[(h * image + n) * tokens + t];
      for (std::int64_t j = 0; j < text; ++j)
        row_sum[h * image + n] += run.probabilities[(h * image + n) * text + j];
    }
  check_close(run.relevance, text_mass, 2e-5, "I3: R = text mass of the explicit softmax");
  check_close(row_sum, std::vector<double>(heads * image, 1.0), 2e-5, "I3: rows sum to 1");
}

void test_readout_rejects_bad_arguments() {
  const auto layout = star::token_layout::sd3(2, 2, 3);
  const std::int64_t tokens = layout.total_tokens();
  readout_case c{1, 1, 8, layout, std::vector<double>(tokens * 8, 0.1),
                 std::vector<double>(tokens * 8, 0.1), std::vector<double>(tokens, 1.0), {0},
                 {1.0}, 0.3, 1.0, std::vector<double>(4, 0.0)};
  c.columns = {80};  // outside [0, L)
  check(run_readout(c, element::f32).status != 0, "column outside the text block is rejected");
  c.columns = {0};
  c.scale = 0.0;
  check(run_readout(c, element::f32).status != 0, "scale 0 is rejected");
}

// ---------------------------------------------------------------- allocation

void allocation_matches_reference(const star::allocation_options& options,
                                  std::vector<double> relevance, std::int64_t rows,
                                  std::int64_t tokens, const std::string& label) {
  const reference_backend be{};
  const std::int64_t num_steps = 5;
  std::vector<std::int64_t> steps(rows);
  for (std::int64_t r = 0; r < rows; ++r) steps[r] = r % num_steps;
  for (const element type : all_types) {
    std::printf(" allocation %s, %s\n", label.c_str(), name_of(type).c_str());
    const auto input = rounded(relevance, type);
    const auto want = star::allocate(be, be.from_host(input, {rows, tokens}), steps, num_steps,
                                     options);  // weights [B, N], per-row lambda and entropy
    std::vector<double> lambda;
    if (options.schedule != star::mixing_schedule::entropy)
      for (const auto k : steps) lambda.push_back(star::mixing_lambda(options, k, num_steps, 0.0));
    const allocation_run run = run_allocation(
        {rows, tokens, input, options.tau, lambda, options.w_max.value_or(0.0)}, type);
    check(run.status == 0, "allocation launch status " + std::to_string(run.status));
    if (run.status != 0) continue;
    const double tol = type == element::f32 ? 5e-5 : 5e-4;
    check_close(run.weights, be.to_host(want.weights), tol, "W " + label);
    check_close(run.lambda, want.lambda, tol, "lambda " + label);
    check_close(run.entropy, want.entropy, tol, "entropy " + label);
    check(std::accumulate(run.capped.begin(), run.capped.end(), 0LL) == want.capped_entries,
          "capped entries " + label);
    // I2: every row has mean exactly 1 (to float rounding)
    for (std::int64_t r = 0; r < rows; ++r) {
      double sum = 0.0;
      for (std::int64_t n = 0; n < tokens; ++n) sum += run.weights[r * tokens + n];
      check_close(sum / tokens, 1.0, 1e-5, "I2 mean W = 1, row " + std::to_string(r) + " " + label);
    }
  }
}

void test_allocation() {
  const std::int64_t rows = 6, tokens = 1024;
  auto relevance = star::test::uniform(rows * tokens, 31, 0.0, 1.0);
  for (std::int64_t n = 0; n < tokens; ++n) {
    relevance[n] = relevance[n] * relevance[n] * relevance[n];       // peaked row
    relevance[tokens + n] = 0.0;                                    // all-zero row
    relevance[2 * tokens + n] = n == 17 ? 3.0 : 0.0;                // one-hot row
  }
  star::allocation_options options;  // constant lambda 0.5
  allocation_matches_reference(options, relevance, rows, tokens, "constant lambda 0.5");
  options.tau = 0.5;
  options.schedule = star::mixing_schedule::entropy;
  allocation_matches_reference(options, relevance, rows, tokens, "entropy schedule, tau 0.5");
  options.tau = 1.0;
  options.schedule = star::mixing_schedule::cosine;
  options.w_max = 1.5;
  allocation_matches_reference(options, relevance, rows, tokens, "cosine schedule, cap 1.5");
  options.tau = 0.25;
  options.schedule = star::mixing_schedule::constant;
  options.lambda = 0.0;
  options.w_max = 4.0;
  allocation_matches_reference(options, relevance, rows, tokens, "lambda 0, tau 0.25, cap 4");
  options.tau = 1.0;
  options.lambda = 0.2;
  options.w_max = 2.0;
  allocation_matches_reference(options, star::test::uniform(3 * 37, 32, 0, 1), 3, 37,
                               "N = 37, cap 2");
}

void test_allocation_rejects_bad_input() {
  allocation_case c{2, 8, std::vector<double>(16, 0.5), 1.0, {}, 0.0};
  c.relevance[9] = -1.0;
  const allocation_run run = run_allocation(c, element::f32);
  check(run.status == 0 && run.capped[0] == 0 && run.capped[1] == -1,
        "a negative entry marks its row with capped = -1, other rows unaffected");
  allocation_case given{3, 8, std::vector<double>(24, 0.5), 1.0, {0.5, std::nan(""), 1.5}, 0.0};
  const allocation_run with_lambda = run_allocation(given, element::f32);
  check(with_lambda.status == 0 && with_lambda.capped == std::vector<int>{0, -1, -1},
        "a given lambda of NaN or 1.5 marks its row with capped = -1");
  check(with_lambda.status == 0 && with_lambda.weights[0] == 1.0 &&
            std::isnan(with_lambda.weights[8]) && std::isnan(with_lambda.weights[16]),
        "a row with a valid lambda is allocated, the marked rows are NaN");
  c.tau = 0.0;
  check(run_allocation(c, element::f32).status != 0, "tau 0 is rejected");
  c = {1, 5000, std::vector<double>(5000, 1.0), 1.0, {}, 0.0};
  check(run_allocation(c, element::f32).status != 0, "N > 4096 is rejected");
}

// ---------------------------------------------------------------- token objective

objective_case random_objective(std::int64_t rows, std::int64_t tokens, std::uint64_t seed) {
  objective_case c{};
  c.rows = rows, c.tokens = tokens;
  c.old_log_prob = star::test::normal(rows * tokens, seed, 0.0, 1.0);
  c.log_prob = c.old_log_prob;
  const auto noise = star::test::normal(rows * tokens, seed + 1, 0.0, 3e-3);
  for (std::size_t i = 0; i < noise.size(); ++i) c.log_prob[i] += noise[i];
  c.allocation = star::test::uniform(rows * tokens, seed + 2, 0.2, 2.0);
  c.advantages = star::test::uniform(rows, seed + 3, -2.0, 2.0);
  c.step_weights = star::test::uniform(rows, seed + 4, 0.5, 1.5);
  c.kl = star::test::uniform(rows * tokens, seed + 5, 0.0, 0.1);
  c.clip_range = 2e-3, c.beta = 0.04, c.kl_weighted_by_allocation = false, c.loss_grad = 1.0;
  return c;
}

/// Sets `ell = ell_old` wherever the ratio lies within 1e-5 of a clip bound `1 +- eps`: there
/// float32 and double may put the entry on different sides, and its gradient with it.
void keep_ratios_off_clip_bounds(objective_case& c) {
  for (std::size_t i = 0; i < c.log_prob.size(); ++i) {
    const double ratio = std::exp(c.log_prob[i] - c.old_log_prob[i]);
    if (std::abs(std::abs(ratio - 1.0) - c.clip_range) < 1e-5) c.log_prob[i] = c.old_log_prob[i];
  }
}

void objective_matches_reference(objective_case c, const std::string& label) {
  const reference_backend be{};
  for (const element type : all_types) {
    std::printf(" token objective %s, %s\n", label.c_str(), name_of(type).c_str());
    for (auto* values : {&c.log_prob, &c.old_log_prob, &c.allocation, &c.kl})
      *values = rounded(*values, type);
    keep_ratios_off_clip_bounds(c);
    const star::shape dims{c.rows, c.tokens}, rows{c.rows};
    star::policy_objective_inputs<reference_backend::tensor> in{
        .log_prob = be.from_host(c.log_prob, dims),                                // [R, N]
        .old_log_prob = be.from_host(c.old_log_prob, dims),                        // [R, N]
        .advantages = be.from_host(rounded(c.advantages, element::f32), rows),     // [R]
        .allocation = be.from_host(c.allocation, dims),                            // [R, N]
        .step_weights = std::nullopt,
        .kl = std::nullopt};
    if (!c.step_weights.empty())
      in.step_weights = be.from_host(rounded(c.step_weights, element::f32), rows);  // [R]
    if (!c.kl.empty()) in.kl = be.from_host(c.kl, dims);                           // [R, N]
    const star::policy_objective_options options{
        .mode = star::objective_mode::token, .token_clip_range = c.clip_range, .beta = c.beta,
        .kl_weights = c.kl_weighted_by_allocation ? star::kl_weighting::allocation
                                                  : star::kl_weighting::uniform};
    const auto want = star::spatial_policy_objective(be, in, options);
    const auto grad = star::spatial_policy_gradient(be, in, options);
    const objective_run run = run_token_objective(c, type);
    check(run.status == 0, "objective launch status " + std::to_string(run.status));
    if (run.status != 0) continue;
    check(run.repeat_identical, "a second forward on the same workspace " + label);
    check(run.forward_gradient_identical, "the forward's gradient is the backward's " + label);
    const double entry = 1.0 / double(c.rows * c.tokens), tol = 1e-4;
    check_close(run.loss, star::ops::item(be, want.loss), tol, "loss " + label);
    check_close(run.policy_loss, want.policy_loss, tol, "policy_loss " + label);
    check_close(run.kl_loss, want.kl_loss, tol, "kl_loss " + label);
    check_close(run.approx_kl, want.approx_kl, 1e-3 * want.approx_kl + 1e-9, "approx_kl " + label);
    // no ratio lies near a clip bound: every entry is on the same side in both, so the
    // fractions differ by the float rounding of the result alone
    check_close(run.clip_fraction, want.clip_fraction, 1e-6, "clip_fraction " + label);
    check_close(run.outside_clip_range_fraction, want.outside_clip_range_fraction, 1e-6,
                "outside_clip_range_fraction " + label);
    std::vector<double> want_d_log_prob = be.to_host(grad.log_prob);
    for (double& g : want_d_log_prob) g *= c.loss_grad;
    check_close(run.d_log_prob, want_d_log_prob, 1e-3 * entry, "d loss / d ell " + label);
    if (grad.kl) {
      std::vector<double> want_d_kl = be.to_host(*grad.kl);
      for (double& g : want_d_kl) g *= c.loss_grad;
      check_close(run.d_kl, want_d_kl, 1e-3 * entry, "d loss / d kl " + label);
    }
  }
}

void test_token_objective() {
  objective_matches_reference(random_objective(7, 1024, 41), "gamma, uniform KL");
  auto weighted = random_objective(5, 333, 42);
  weighted.kl_weighted_by_allocation = true;
  weighted.loss_grad = -0.5;
  objective_matches_reference(weighted, "W-weighted KL, upstream -0.5");
  auto plain = random_objective(3, 100, 43);
  plain.step_weights.clear();
  plain.kl.clear();
  plain.beta = 0.0;
  objective_matches_reference(plain, "no gamma, no KL");
  // more rows than fit on the GPU at once and than the last block has threads to add them
  objective_matches_reference(random_objective(2000, 64, 44), "2000 rows of 64");
}

/// I5: rows with A = 0 contribute zero loss and zero gradient.
void test_token_objective_zero_advantage() {
  auto c = random_objective(4, 256, 51);
  c.advantages = {0.0, 0.0, 0.0, 0.0};
  c.kl.clear();
  c.beta = 0.0;
  const objective_run run = run_token_objective(c, element::f32);
  check(run.status == 0, "objective launch status");
  if (run.status != 0) return;
  check(run.loss == 0.0 && run.policy_loss == 0.0, "I5: zero loss");
  bool all_zero = true;
  for (const double g : run.d_log_prob) all_zero = all_zero && g == 0.0;
  check(all_zero, "I5: zero gradient");
}

/// NaN in an input, or a zero advantage times an overflowing ratio, shows in the loss as in
/// the gradient (a max that drops NaN would report a finite loss).
void test_token_objective_non_finite() {
  auto c = random_objective(2, 64, 71);
  c.log_prob[5] = std::nan("");
  objective_run run = run_token_objective(c, element::f32);
  check(run.status == 0 && std::isnan(run.loss) && std::isnan(run.d_log_prob[5]),
        "a NaN log_prob makes the loss and its gradient entry NaN");
  c = random_objective(2, 64, 72);
  c.advantages[1] = 0.0;
  c.log_prob[64 + 3] = c.old_log_prob[64 + 3] + 100.0;  // exp overflows in float32
  run = run_token_objective(c, element::f32);
  check(run.status == 0 && std::isnan(run.loss), "A = 0 with an infinite ratio: a NaN loss");
}

/// The forward writing its gradient reads `kl` before it writes `d_kl` into the same memory.
void test_token_objective_gradient_in_place() {
  const auto [apart, in_place] = kl_loss_apart_and_in_place(random_objective(3, 256, 81));
  check(apart > 0.0 && in_place == apart, "kl_loss with d_kl written over kl: " +
                                              std::to_string(in_place) + " vs " +
                                              std::to_string(apart));
}

void test_token_objective_rejects_bad_options() {
  auto c = random_objective(2, 16, 61);
  c.clip_range = 1.5;
  check(run_token_objective(c, element::f32).status != 0, "clip_range 1.5 is rejected");
  c = random_objective(2, 16, 61);
  c.kl.clear();
  check(run_token_objective(c, element::f32).status != 0, "beta > 0 without kl is rejected");
  const char* gradient_cases[] = {"a [R, N + 1] d_log_prob", "a d_kl without kl",
                                  "a backward without d_log_prob"};
  const std::vector<int> statuses = objective_gradient_rejections(random_objective(2, 16, 62));
  check(statuses.size() == std::size(gradient_cases), "one status per gradient case");
  for (std::size_t i = 0; i < statuses.size() && i < std::size(gradient_cases); ++i)
    check(statuses[i] != 0, std::string(gradient_cases[i]) + " is rejected");
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, std::function<void()>> cases{
      {"readout", test_readout},
      {"readout_full_softmax", test_readout_full_softmax},
      {"readout_rejects_bad_arguments", test_readout_rejects_bad_arguments},
      {"allocation", test_allocation},
      {"allocation_rejects_bad_input", test_allocation_rejects_bad_input},
      {"token_objective", test_token_objective},
      {"token_objective_zero_advantage", test_token_objective_zero_advantage},
      {"token_objective_non_finite", test_token_objective_non_finite},
      {"token_objective_gradient_in_place", test_token_objective_gradient_in_place},
      {"token_objective_rejects_bad_options", test_token_objective_rejects_bad_options},
  };
  std::vector<std::string> selected(argv + 1, argv + argc);
  if (selected.empty())
    for (const auto& [name, run] : cases) selected.push_back(name);
  std::string why;
  if (!star::test::cuda::device_available(why)) {
    std::printf("no usable CUDA device: %s\n", why.c_str());
    return 1;
  }
  for (const auto& name : selected) {
    const auto found = cases.find(name);
    if (found == cases.end()) {
      std::printf("unknown case %s\n", name.c_str());
      return 2;
    }
    const int before = failures;
    std::printf("[%s]\n", name.c_str());
    try {
      found->second();
    } catch (const std::exception& e) {
      check(false, std::string("exception: ") + e.what());
    }
    std::printf("[%s] %s\n", name.c_str(), failures == before ? "passed" : "FAILED");
  }
  return failures == 0 ? 0 : 1;
}
