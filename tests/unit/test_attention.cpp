// Attention-map extraction (docs/math.md §3): the LSE path against the explicit softmax
// (I3), the SD3 golden fixture, the text_to_image direction, and equivariance (I4).
#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "star/attention/all.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"
#include "support/safetensors.hpp"

namespace {

using star::token_layout;

/// Host copies of joint q, k [B, H, T, D].
struct joint_host {
  star::shape dims;
  std::vector<double> q, k;

  double at(const std::vector<double>& x, std::int64_t b, std::int64_t h, std::int64_t t,
            std::int64_t d) const {
    return x[static_cast<std::size_t>(((b * dims[1] + h) * dims[2] + t) * dims[3] + d)];
  }
  /// `scale * q[b,h,tq] . k[b,h,tk]` in double.
  double score(std::int64_t b, std::int64_t h, std::int64_t tq, std::int64_t tk,
               double scale) const {
    double dot = 0.0;
    for (std::int64_t d = 0; d < dims[3]; ++d) dot += at(q, b, h, tq, d) * at(k, b, h, tk, d);
    return scale * dot;
  }
};

joint_host random_joint(const token_layout& layout, std::int64_t batch, std::int64_t heads,
                        std::int64_t head_dim, std::uint64_t seed) {
  const star::shape dims{batch, heads, layout.total_tokens(), head_dim};
  const auto count = static_cast<std::size_t>(star::numel(dims));
  return {dims, star::test::normal(count, seed), star::test::normal(count, seed + 1)};
}

/// Host softmax over all T keys for every image query: [B, H, N, T].
std::vector<double> host_full_rows(const joint_host& x, const token_layout& layout, double scale) {
  const std::int64_t batch = x.dims[0], heads = x.dims[1], tokens = x.dims[2];
  std::vector<double> out;
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t n = 0; n < layout.image_tokens(); ++n) {
        std::vector<double> row(static_cast<std::size_t>(tokens));
        for (std::int64_t m = 0; m < tokens; ++m)
          row[static_cast<std::size_t>(m)] = x.score(b, h, layout.image_begin() + n, m, scale);
        const double max = *std::max_element(row.begin(), row.end());
        double sum = 0.0;
        for (double& v : row) sum += (v = std::exp(v - max));
        for (const double v : row) out.push_back(v / sum);
      }
  return out;
}

/// Host LSE over all keys for every image query: [B, H, N].
std::vector<double> host_image_lse(const joint_host& x, const token_layout& layout, double scale) {
  std::vector<double> out;
  for (std::int64_t b = 0; b < x.dims[0]; ++b)
    for (std::int64_t h = 0; h < x.dims[1]; ++h)
      for (std::int64_t n = 0; n < layout.image_tokens(); ++n) {
        double sum = 0.0;
        for (std::int64_t m = 0; m < x.dims[2]; ++m)
          sum += std::exp(x.score(b, h, layout.image_begin() + n, m, scale));
        out.push_back(std::log(sum));
      }
  return out;
}

/// The columns `cols` of a row-major [rows, width] host array.
std::vector<double> host_columns(const std::vector<double>& a, std::int64_t width,
                                 const std::vector<std::int64_t>& cols, std::int64_t offset) {
  std::vector<double> out;
  for (std::size_t r = 0; r < a.size() / static_cast<std::size_t>(width); ++r)
    for (const std::int64_t c : cols)
      out.push_back(a[r * static_cast<std::size_t>(width) + static_cast<std::size_t>(c + offset)]);
  return out;
}

/// The rows `tokens` of a joint host tensor [B, H, T, D]: [B, H, tokens.size(), D].
std::vector<double> host_rows(const joint_host& x, const std::vector<double>& values,
                              const std::vector<std::int64_t>& tokens) {
  std::vector<double> out;
  for (std::int64_t b = 0; b < x.dims[0]; ++b)
    for (std::int64_t h = 0; h < x.dims[1]; ++h)
      for (const std::int64_t t : tokens)
        for (std::int64_t d = 0; d < x.dims[3]; ++d) out.push_back(x.at(values, b, h, t, d));
  return out;
}

token_layout small_layout(bool image_first) {
  return {3, 4, {{"clip", 3}, {"t5", 4}}, image_first};  // N = 12, L = 7, T = 19
}

/// Calls `body(layout, x, q, k)` for the image-first and the text-first small layout, with
/// random q, k of `batch` x `heads` x T x `head_dim` drawn from `seeds[0]` and `seeds[1]`
/// respectively, on the host (`x`) and as `be`'s tensors.
template <class Backend, class Body>
void for_both_block_orders(const Backend& be, std::int64_t batch, std::int64_t heads,
                           std::int64_t head_dim, std::array<std::uint64_t, 2> seeds,
                           const Body& body) {
  for (const bool image_first : {true, false}) {
    const token_layout layout = small_layout(image_first);
    const std::uint64_t seed = seeds[image_first ? 0 : 1];
    INFO("seed " << seed << ", image_first " << image_first);
    const joint_host x = random_joint(layout, batch, heads, head_dim, seed);
    const auto q = be.from_host(x.q, x.dims);  // [B, H, T, D]
    const auto k = be.from_host(x.k, x.dims);  // [B, H, T, D]
    body(layout, x, q, k);
  }
}

/// Joint q or k with the image rows reordered: new image token n takes old token perm[n].
std::vector<double> permute_image_rows(const joint_host& x, const std::vector<double>& values,
                                       const token_layout& layout,
                                       const std::vector<std::int64_t>& perm) {
  std::vector<double> out = values;
  const std::int64_t tokens = x.dims[2], head_dim = x.dims[3];
  for (std::int64_t bh = 0; bh < x.dims[0] * x.dims[1]; ++bh)
    for (std::int64_t n = 0; n < layout.image_tokens(); ++n)
      for (std::int64_t d = 0; d < head_dim; ++d) {
        const std::int64_t base = bh * tokens * head_dim;
        out[static_cast<std::size_t>(base + (layout.image_begin() + n) * head_dim + d)] =
            values[static_cast<std::size_t>(base + (layout.image_begin() + perm[n]) * head_dim +
                                            d)];
      }
  return out;
}

/// `values` [B, rest...] with the outermost axis reordered: new b takes old perm[b].
std::vector<double> permute_outer(const std::vector<double>& values,
                                  const std::vector<std::int64_t>& perm) {
  const std::size_t inner = values.size() / perm.size();
  std::vector<double> out;
  for (const std::int64_t b : perm)
    out.insert(out.end(), values.begin() + static_cast<std::ptrdiff_t>(b * inner),
               values.begin() + static_cast<std::ptrdiff_t>((b + 1) * inner));
  return out;
}

/// `values` [B, N] with the image axis reordered: new n takes old perm[n].
std::vector<double> permute_map(const std::vector<double>& values,
                                const std::vector<std::int64_t>& perm) {
  std::vector<double> out(values.size());
  const std::size_t tokens = perm.size();
  for (std::size_t b = 0; b < values.size() / tokens; ++b)
    for (std::size_t n = 0; n < tokens; ++n)
      out[b * tokens + n] = values[b * tokens + static_cast<std::size_t>(perm[n])];
  return out;
}

/// Horizontal (mirror columns) or vertical (mirror rows) flip of a row-major h x w grid.
std::vector<std::int64_t> grid_flip(const token_layout& layout, bool horizontal) {
  std::vector<std::int64_t> perm;
  for (std::int64_t row = 0; row < layout.grid_h; ++row)
    for (std::int64_t col = 0; col < layout.grid_w; ++col)
      perm.push_back(horizontal ? layout.grid_w * row + (layout.grid_w - 1 - col)
                                : layout.grid_w * (layout.grid_h - 1 - row) + col);
  return perm;
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("I3 attention extraction: LSE path equals the explicit full softmax",
                        "[attention][I3]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::vector<std::int64_t> columns{0, 2, 3, 6};
  const auto check = [&](const token_layout& layout, const joint_host& x, const auto& q,
                         const auto& k) {
    const double scale = 1.0 / std::sqrt(8.0);
    const std::int64_t tokens = layout.total_tokens(), text = layout.text_tokens();

    const auto rows = star::full_attention_image_rows(be, q, k, layout);  // [B, H, N, T]
    const auto rows_host = be.to_host(rows);
    star::test::require_close(rows_host, host_full_rows(x, layout, scale), tol, "full rows");
    const auto row_sums = be.to_host(be.sum(rows, {-1}, false));  // [B, H, N]
    star::test::require_close(row_sums, std::vector<double>(row_sums.size(), 1.0), tol,
                              "full-softmax rows sum to 1");

    const auto full_text = be.to_host(star::full_attention_image_to_text(be, q, k, layout));
    star::test::require_close(
        full_text, host_columns(rows_host, tokens, {0, 1, 2, 3, 4, 5, 6}, layout.text_begin()), tol,
        "text slice of the full softmax");
    const auto want = host_columns(full_text, text, columns, 0);

    for (const std::int64_t chunk :
         {std::int64_t{1}, std::int64_t{5}, std::int64_t{19}, std::int64_t{256}}) {
      INFO("lse_key_chunk " << chunk);
      const star::attention_options options{.lse_key_chunk = chunk};
      const auto lse = star::image_row_lse(be, q, k, layout, options);  // [B, H, N]
      star::test::require_close(be.to_host(lse), host_image_lse(x, layout, scale), tol, "lse");
      star::test::require_close(
          be.to_host(star::attention_probabilities(be, q, k, layout, columns, options)), want, tol,
          "probabilities, lse computed");
      star::test::require_close(
          be.to_host(star::attention_probabilities(be, q, k, layout, columns, lse, options)), want,
          tol, "probabilities, lse given");
    }

    const star::attention_options scaled{.scale = 0.7};
    const auto scaled_rows =
        be.to_host(star::full_attention_image_to_text(be, q, k, layout, scaled));
    star::test::require_close(
        be.to_host(star::attention_probabilities(be, q, k, layout, columns, scaled)),
        host_columns(scaled_rows, text, columns, 0), tol, "explicit scale");
    star::test::require_close(scaled_rows,
                              host_columns(host_full_rows(x, layout, 0.7), tokens,
                                           {0, 1, 2, 3, 4, 5, 6}, layout.text_begin()),
                              tol, "explicit scale, host");
  };
  for_both_block_orders(be, 2, 3, 8, {11, 23}, check);
}

TEMPLATE_LIST_TEST_CASE("image_to_text_probabilities of the gathered rows equals "
                        "attention_probabilities with the same lse",
                        "[attention][I3]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::vector<std::int64_t> columns{5, 0, 3};  // not sorted: the order of the output
  const auto check = [&](const token_layout& layout, const joint_host& x, const auto& q,
                         const auto& k) {
    std::vector<std::int64_t> image_tokens, key_tokens;
    for (std::int64_t n = 0; n < layout.image_tokens(); ++n)
      image_tokens.push_back(layout.image_begin() + n);
    for (const std::int64_t j : columns) key_tokens.push_back(layout.text_begin() + j);
    const auto q_image = be.from_host(
        host_rows(x, x.q, image_tokens), {2, 3, layout.image_tokens(), 8});  // [B, H, N, D]
    const auto k_selected =
        be.from_host(host_rows(x, x.k, key_tokens), {2, 3, 3, 8});  // [B, H, S, D]

    for (const star::attention_options options :
         {star::attention_options{}, star::attention_options{.scale = 0.7}}) {
      const double scale = options.scale_for(8);
      INFO("scale " << scale);
      const auto lse = star::image_row_lse(be, q, k, layout, options);  // [B, H, N]
      const auto got = star::image_to_text_probabilities(be, q_image, k_selected, lse,
                                                         options);  // [B, H, N, S]
      REQUIRE(be.shape_of(got) == star::shape{2, 3, layout.image_tokens(), 3});
      star::test::require_close(
          be.to_host(got),
          be.to_host(star::attention_probabilities(be, q, k, layout, columns, lse, options)), tol,
          "against attention_probabilities");
      star::test::require_close(be.to_host(got),
                                host_columns(host_full_rows(x, layout, scale),
                                             layout.total_tokens(), columns, layout.text_begin()),
                                tol, "against the host softmax");
    }
  };
  for_both_block_orders(be, 2, 3, 8, {61, 67}, check);
}

TEMPLATE_LIST_TEST_CASE("attention extraction reproduces the SD3 joint-attention fixture",
                        "[attention][golden]", star::test::all_backends) {
  const TestType be{};
  const double tol = std::max(1e-5, star::test::tolerance<TestType>::value);
  const auto fixture =
      star::test::read_safetensors(star::test::data_path("sd3_transformer_io.safetensors"));
  struct golden_case {
    std::string name;
    token_layout layout;
  };
  const std::vector<golden_case> cases{{"case1", {4, 4, {{"text", 12}}, true}},
                                       {"case2", {6, 4, {{"text", 7}}, true}}};
  for (const auto& [name, layout] : cases)
    for (int block = 0; block < 3; ++block) {
      const std::string suffix = ".block" + std::to_string(block);
      INFO(name << suffix);
      const auto& q_fix = fixture.at(name + ".attn_q" + suffix);
      const auto& k_fix = fixture.at(name + ".attn_k" + suffix);
      const auto& lse_fix = fixture.at(name + ".attn_lse_img" + suffix);
      const auto& probs_fix = fixture.at(name + ".attn_probs_img2txt" + suffix);
      const auto q = be.from_host(q_fix.values, q_fix.dims);  // [B, H, T, D]
      const auto k = be.from_host(k_fix.values, k_fix.dims);  // [B, H, T, D]
      std::vector<std::int64_t> all_columns(static_cast<std::size_t>(layout.text_tokens()));
      std::iota(all_columns.begin(), all_columns.end(), 0);

      const star::attention_options options{.lse_key_chunk = 5};
      const auto lse = star::image_row_lse(be, q, k, layout, options);  // [B, H, N]
      REQUIRE(be.shape_of(lse) == lse_fix.dims);
      star::test::require_close(be.to_host(lse), lse_fix.values, tol, "lse");

      const auto probs =
          star::attention_probabilities(be, q, k, layout, all_columns, options);  // [B, H, N, L]
      REQUIRE(be.shape_of(probs) == probs_fix.dims);
      star::test::require_close(be.to_host(probs), probs_fix.values, tol, "probabilities");

      const auto fixture_lse = be.from_host(lse_fix.values, lse_fix.dims);  // [B, H, N]
      star::test::require_close(
          be.to_host(star::attention_probabilities(be, q, k, layout, all_columns, fixture_lse)),
          probs_fix.values, tol, "probabilities with the fixture's lse");
      star::test::require_close(be.to_host(star::full_attention_image_to_text(be, q, k, layout)),
                                probs_fix.values, tol, "full softmax");
    }
}

TEMPLATE_LIST_TEST_CASE("text_to_image equals an explicit softmax over the image keys",
                        "[attention]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::vector<std::int64_t> columns{5, 1, 4};
  const auto check = [&](const token_layout& layout, const joint_host& x, const auto& q,
                         const auto& k) {
    const star::attention_options options{.direction = star::attention_direction::text_to_image};
    const auto probs =
        star::attention_probabilities(be, q, k, layout, columns, options);  // [B, H, N, S]
    const std::int64_t image = layout.image_tokens();
    REQUIRE(be.shape_of(probs) == star::shape{2, 2, image, 3});

    std::vector<double> want(static_cast<std::size_t>(2 * 2 * image * 3));
    const double scale = 0.5;  // 1 / sqrt(4)
    for (std::int64_t b = 0; b < 2; ++b)
      for (std::int64_t h = 0; h < 2; ++h)
        for (std::size_t s = 0; s < columns.size(); ++s) {
          const std::int64_t query = layout.text_begin() + columns[s];
          double sum = 0.0;
          for (std::int64_t n = 0; n < image; ++n)
            sum += std::exp(x.score(b, h, query, layout.image_begin() + n, scale));
          for (std::int64_t n = 0; n < image; ++n)
            want[static_cast<std::size_t>(((b * 2 + h) * image + n) * 3) + s] =
                std::exp(x.score(b, h, query, layout.image_begin() + n, scale)) / sum;
        }
    const auto got = be.to_host(probs);
    star::test::require_close(got, want, tol, "text_to_image");
    const auto column_sums = be.to_host(be.sum(probs, {2}, false));  // [B, H, S]
    star::test::require_close(column_sums, std::vector<double>(column_sums.size(), 1.0), tol,
                              "each text query's image softmax sums to 1");
  };
  for_both_block_orders(be, 2, 2, 4, {31, 37}, check);
}

TEMPLATE_LIST_TEST_CASE("I4 equivariance: flipping the image grid flips the maps",
                        "[attention][I4]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::vector<double> weights{0.5, 0.25, 0.25};
  const std::vector<std::int64_t> columns{1, 3, 6};
  for (const bool image_first : {true, false})
    for (const auto direction :
         {star::attention_direction::image_to_text, star::attention_direction::text_to_image})
      for (const bool horizontal : {true, false}) {
        const token_layout layout = small_layout(image_first);
        const std::uint64_t seed = 41 + (image_first ? 0 : 2);
        INFO("seed " << seed << ", image_first " << image_first << ", horizontal " << horizontal
                     << ", text_to_image "
                     << (direction == star::attention_direction::text_to_image));
        const star::attention_options options{.direction = direction, .lse_key_chunk = 4};
        const joint_host x = random_joint(layout, 2, 2, 6, seed);
        const auto perm = grid_flip(layout, horizontal);
        const auto map = [&](const std::vector<double>& q, const std::vector<double>& k) {
          const auto probs =
              star::attention_probabilities(be, be.from_host(q, x.dims), be.from_host(k, x.dims),
                                            layout, columns, options);  // [B, H, N, S]
          return be.to_host(star::relevance_map(be, probs, weights));
        };
        const auto original = map(x.q, x.k);
        const auto flipped =
            map(permute_image_rows(x, x.q, layout, perm), permute_image_rows(x, x.k, layout, perm));
        star::test::require_close(flipped, permute_map(original, perm), tol, "flipped map");
        // The flip is not a symmetry of this input: the comparison above can fail.
        REQUIRE_FALSE(original == permute_map(original, perm));
      }
}

TEMPLATE_LIST_TEST_CASE("I4 equivariance: permuting the rollouts permutes the maps",
                        "[attention][I4]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const token_layout layout = small_layout(false);
  const std::uint64_t seed = 53;
  INFO("seed " << seed);
  const joint_host x = random_joint(layout, 3, 2, 4, seed);
  const std::vector<std::int64_t> perm{2, 0, 1};
  const std::vector<std::int64_t> columns{0, 4};
  const std::vector<double> weights{1.0, 2.0};
  const auto q = be.from_host(x.q, x.dims);                                     // [B, H, T, D]
  const auto k = be.from_host(x.k, x.dims);                                     // [B, H, T, D]
  const auto q_perm = be.from_host(permute_outer(x.q, perm), x.dims);           // [B, H, T, D]
  const auto k_perm = be.from_host(permute_outer(x.k, perm), x.dims);           // [B, H, T, D]
  const auto probs = star::attention_probabilities(be, q, k, layout, columns);  // [B, H, N, S]
  const auto probs_perm =
      star::attention_probabilities(be, q_perm, k_perm, layout, columns);  // [B, H, N, S]
  star::test::require_close(be.to_host(probs_perm), permute_outer(be.to_host(probs), perm), tol,
                            "probabilities");
  star::test::require_close(
      be.to_host(star::relevance_map(be, probs_perm, weights)),
      permute_outer(be.to_host(star::relevance_map(be, probs, weights)), perm), tol,
      "relevance maps");
}
