// Relevance maps from attention (docs/math.md §3): column selection, the weighted head
// mean of one block, the mean over blocks with the block filter, and grid smoothing.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <set>
#include <vector>

#include "star/attention/all.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

namespace {

using star::token_layout;

/// `sum_j weights_j * mean_h probs[b, h, n, j]` on the host: [B, N].
std::vector<double> host_relevance(const std::vector<double>& probs, const star::shape& dims,
                                   const std::vector<double>& weights) {
  const std::int64_t batch = dims[0], heads = dims[1], image = dims[2], columns = dims[3];
  std::vector<double> out(static_cast<std::size_t>(batch * image), 0.0);
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t n = 0; n < image; ++n)
        for (std::int64_t j = 0; j < columns; ++j)
          out[static_cast<std::size_t>(b * image + n)] +=
              weights[static_cast<std::size_t>(j)] *
              probs[static_cast<std::size_t>(((b * heads + h) * image + n) * columns + j)] /
              static_cast<double>(heads);
  return out;
}

/// `map` [B, h * w] with the grid mirrored horizontally (columns) or vertically (rows).
std::vector<double> flip_grid(const std::vector<double>& map, std::int64_t h, std::int64_t w,
                              bool horizontal) {
  std::vector<double> out(map.size());
  for (std::size_t b = 0; b < map.size() / static_cast<std::size_t>(h * w); ++b)
    for (std::int64_t row = 0; row < h; ++row)
      for (std::int64_t col = 0; col < w; ++col) {
        const std::int64_t from = horizontal ? w * row + (w - 1 - col) : w * (h - 1 - row) + col;
        out[b * static_cast<std::size_t>(h * w) + static_cast<std::size_t>(w * row + col)] =
            map[b * static_cast<std::size_t>(h * w) + static_cast<std::size_t>(from)];
      }
  return out;
}

double total(const std::vector<double>& values) {
  return std::accumulate(values.begin(), values.end(), 0.0);
}

}  // namespace

TEST_CASE("select_text_columns keeps the positive weights in text order") {
  const token_layout layout{2, 2, {{"clip", 3}, {"t5", 3}}, false};
  const std::vector<double> w{0.0, 0.25, 0.0, 0.0, 0.5, 0.25};
  const star::text_selection selection = star::select_text_columns(w, layout);
  REQUIRE(selection.indices == std::vector<std::int64_t>{1, 4, 5});
  REQUIRE(selection.weights == std::vector<double>{0.25, 0.5, 0.25});
}

TEMPLATE_LIST_TEST_CASE("relevance_map is the weighted sum of the head-mean probabilities",
                        "[attention]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::uint64_t seed = 7;
  INFO("seed " << seed);
  const star::shape dims{2, 3, 5, 4};
  const auto probs =
      star::test::uniform(static_cast<std::size_t>(star::numel(dims)), seed, 0.0, 1.0);
  const std::vector<double> weights{0.1, 0.0, 0.6, 0.3};
  const auto map = star::relevance_map(be, be.from_host(probs, dims), weights);  // [B, N]
  REQUIRE(be.shape_of(map) == star::shape{2, 5});
  star::test::require_close(be.to_host(map), host_relevance(probs, dims, weights), tol);
}

TEMPLATE_LIST_TEST_CASE("relevance accumulator: mean over the added blocks and the block filter",
                        "[attention]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const token_layout layout{2, 3, {{"clip", 2}, {"t5", 3}}, true};
  const std::vector<double> w{0.0, 0.5, 0.0, 0.25, 0.25};
  const star::text_selection selection = star::select_text_columns(w, layout);
  const star::shape dims{2, 2, layout.total_tokens(), 4};
  const auto count = static_cast<std::size_t>(star::numel(dims));
  const std::uint64_t seed = 101;
  INFO("seed " << seed);

  // Four blocks: their maps from block_relevance, and the expected means built on the host.
  std::vector<std::vector<double>> maps;
  star::relevance_accumulator<TestType> all_blocks(be);
  star::relevance_accumulator<TestType> filtered(be, std::set<std::int64_t>{1, 3, 7});
  for (std::int64_t block = 0; block < 4; ++block) {
    const auto q = be.from_host(star::test::normal(count, seed + 2 * block), dims);  // [B, H, T, D]
    const auto k =
        be.from_host(star::test::normal(count, seed + 2 * block + 1), dims);  // [B, H, T, D]
    const auto map = star::block_relevance(be, q, k, layout, selection);      // [B, N]
    const auto probs =
        be.to_host(star::attention_probabilities(be, q, k, layout, selection.indices));
    const auto want = host_relevance(probs, {2, 2, layout.image_tokens(), 3}, selection.weights);
    star::test::require_close(be.to_host(map), want, tol, "block_relevance");
    maps.push_back(want);
    REQUIRE(all_blocks.add(block, map));
    REQUIRE(filtered.add(block, map) == (block == 1 || block == 3));
  }
  REQUIRE(all_blocks.blocks_added() == 4);
  REQUIRE(filtered.blocks_added() == 2);

  std::vector<double> mean_all(maps[0].size()), mean_filtered(maps[0].size());
  for (std::size_t i = 0; i < mean_all.size(); ++i) {
    mean_all[i] = (maps[0][i] + maps[1][i] + maps[2][i] + maps[3][i]) / 4.0;
    mean_filtered[i] = (maps[1][i] + maps[3][i]) / 2.0;
  }
  star::test::require_close(be.to_host(all_blocks.result()), mean_all, tol, "all blocks");
  star::test::require_close(be.to_host(filtered.result()), mean_filtered, tol, "filtered");
  REQUIRE_FALSE(mean_all == mean_filtered);
}

TEMPLATE_LIST_TEST_CASE("lse_relevance_accumulator equals relevance_accumulator of "
                        "block_relevance with the same lse, joint or gathered rows, filtered",
                        "[attention]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const token_layout layout{2, 3, {{"clip", 2}, {"t5", 3}}, false};  // N = 6, L = 5, T = 11
  const star::text_selection selection{{3, 1, 4}, {0.5, 0.2, 0.3}};
  const star::attention_options options{.scale = 0.6};
  const star::shape dims{2, 2, layout.total_tokens(), 4};
  const auto count = static_cast<std::size_t>(star::numel(dims));
  const std::uint64_t seed = 131;
  INFO("seed " << seed);
  std::vector<std::int64_t> key_tokens;
  for (const std::int64_t j : selection.indices) key_tokens.push_back(layout.text_begin() + j);

  star::relevance_accumulator<TestType> want_all(be), want_filtered(be, std::set<std::int64_t>{0, 2});
  star::lse_relevance_accumulator<TestType> joint(be, selection, options);
  star::lse_relevance_accumulator<TestType> gathered(be, selection, options,
                                                     std::set<std::int64_t>{0, 2});
  for (std::int64_t block = 0; block < 3; ++block) {
    const auto q = be.from_host(star::test::normal(count, seed + 2 * block), dims);  // [B, H, T, D]
    const auto k =
        be.from_host(star::test::normal(count, seed + 2 * block + 1), dims);  // [B, H, T, D]
    const auto lse = star::image_row_lse(be, q, k, layout, options);      // [B, H, N]
    const auto map = star::block_relevance(be, q, k, layout, selection, lse, options);  // [B, N]
    want_all.add(block, map);
    want_filtered.add(block, map);
    REQUIRE(joint.add(block, q, k, layout, lse));
    const auto q_image = be.slice(q, 2, layout.image_begin(),
                                  layout.image_begin() + layout.image_tokens());  // [B, H, N, D]
    const auto k_selected = be.index_select(k, 2, key_tokens);                     // [B, H, S, D]
    REQUIRE(gathered.add_selected_rows(block, q_image, k_selected, lse) == (block != 1));
  }
  REQUIRE(joint.blocks_added() == 3);
  REQUIRE(gathered.blocks_added() == 2);
  REQUIRE(joint.selection().indices == selection.indices);
  star::test::require_close(be.to_host(joint.result()), be.to_host(want_all.result()), tol,
                            "all blocks");
  star::test::require_close(be.to_host(gathered.result()), be.to_host(want_filtered.result()),
                            tol, "filtered");
  REQUIRE_FALSE(be.to_host(joint.result()) == be.to_host(gathered.result()));

  joint.clear();
  REQUIRE(joint.blocks_added() == 0);
  REQUIRE_THROWS_WITH(joint.result(), Catch::Contains("no block"));
}

TEST_CASE("gaussian_blur_matrix: truncated at 3 sigma, rows sum to 1, symmetric inside") {
  const std::int64_t extent = 11;
  const double sigma = 1.2;  // radius ceil(3.6) = 4
  const auto g = star::gaussian_blur_matrix(extent, sigma);
  REQUIRE(g.size() == 121);
  for (std::int64_t i = 0; i < extent; ++i) {
    double row_sum = 0.0;
    for (std::int64_t j = 0; j < extent; ++j) {
      const double v = g[static_cast<std::size_t>(i * extent + j)];
      row_sum += v;
      if (std::abs(i - j) > 4)
        REQUIRE(v == 0.0);
      else
        REQUIRE(v > 0.0);
    }
    REQUIRE(row_sum == Approx(1.0).epsilon(1e-14));
  }
  // Row 5 has its full window: the kernel itself, symmetric and peaked at the centre.
  REQUIRE(g[5 * 11 + 3] == Approx(g[5 * 11 + 7]).epsilon(1e-14));
  REQUIRE(g[5 * 11 + 4] / g[5 * 11 + 5] == Approx(std::exp(-1.0 / (2 * 1.44))).epsilon(1e-14));
}

TEST_CASE("gaussian_blur_matrix: a huge sigma averages the axis, a tiny one is the identity") {
  const std::int64_t extent = 6;
  // 3 sigma beyond any int64 (its cast was undefined) or any double: every cell in reach.
  for (const double sigma : {1e19, 1e300, std::numeric_limits<double>::max()}) {
    INFO("sigma " << sigma);
    for (const double v : star::gaussian_blur_matrix(extent, sigma))
      REQUIRE(v == Approx(1.0 / static_cast<double>(extent)).epsilon(1e-14));
  }
  // sigma^2 underflows to 0 (the diagonal was -0 / 0 = NaN): the Gaussian of d / sigma.
  for (const double sigma : {1e-170, std::numeric_limits<double>::denorm_min(), 1e-3}) {
    INFO("sigma " << sigma);
    const auto g = star::gaussian_blur_matrix(extent, sigma);
    for (std::int64_t i = 0; i < extent; ++i)
      for (std::int64_t j = 0; j < extent; ++j)
        REQUIRE(g[static_cast<std::size_t>(i * extent + j)] == (i == j ? 1.0 : 0.0));
  }
}

TEMPLATE_LIST_TEST_CASE(
    "smoothing: sigma 0 is the identity, constants stay, mass is kept, "
    "flips commute",
    "[attention][I4]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const token_layout layout{5, 7, {{"t5", 2}}, false};
  const std::int64_t h = 5, w = 7, image = 35;
  const std::uint64_t seed = 211;
  INFO("seed " << seed);
  const auto values = star::test::uniform(2 * image, seed, 0.0, 1.0);
  const auto map = be.from_host(values, {2, image});  // [B, N]

  SECTION("sigma 0 returns the input unchanged") {
    REQUIRE(be.to_host(star::smooth_on_grid(be, map, layout, 0.0)) == be.to_host(map));
  }
  SECTION("equals the explicit separable blur on the host") {
    const double sigma = 0.8;
    const auto gh = star::gaussian_blur_matrix(h, sigma), gw = star::gaussian_blur_matrix(w, sigma);
    std::vector<double> want(values.size(), 0.0);
    for (std::int64_t b = 0; b < 2; ++b)
      for (std::int64_t r = 0; r < h; ++r)
        for (std::int64_t c = 0; c < w; ++c)
          for (std::int64_t r2 = 0; r2 < h; ++r2)
            for (std::int64_t c2 = 0; c2 < w; ++c2)
              want[static_cast<std::size_t>(b * image + r * w + c)] +=
                  gh[static_cast<std::size_t>(r * h + r2)] *
                  gw[static_cast<std::size_t>(c * w + c2)] *
                  values[static_cast<std::size_t>(b * image + r2 * w + c2)];
    star::test::require_close(be.to_host(star::smooth_on_grid(be, map, layout, sigma)), want, tol);
  }
  SECTION("a constant map stays constant") {
    const auto constant = be.full({2, image}, 0.37);  // [B, N]
    star::test::require_close(be.to_host(star::smooth_on_grid(be, constant, layout, 1.5)),
                              std::vector<double>(2 * image, 0.37), tol);
  }
  SECTION("mass is kept exactly away from the border and roughly at it") {
    const token_layout wide{13, 13, {{"t5", 2}}, true};
    std::vector<double> delta(169, 0.0);
    delta[6 * 13 + 6] = 1.0;
    const auto smoothed =
        be.to_host(star::smooth_on_grid(be, be.from_host(delta, {1, 169}), wide, 1.0));
    REQUIRE(total(smoothed) == Approx(1.0).margin(10 * tol));
    REQUIRE(smoothed[6 * 13 + 6] < 0.5);  // the mass did spread
    const auto spread = be.to_host(star::smooth_on_grid(be, map, layout, 1.0));
    REQUIRE(total(spread) == Approx(total(values)).epsilon(0.1));
  }
  SECTION("the symmetric kernel commutes with grid flips") {
    for (const bool horizontal : {true, false}) {
      INFO("horizontal " << horizontal);
      const auto flipped = be.from_host(flip_grid(values, h, w, horizontal), {2, image});  // [B, N]
      const auto smooth_then_flip =
          flip_grid(be.to_host(star::smooth_on_grid(be, map, layout, 1.3)), h, w, horizontal);
      star::test::require_close(be.to_host(star::smooth_on_grid(be, flipped, layout, 1.3)),
                                smooth_then_flip, tol);
    }
  }
}
