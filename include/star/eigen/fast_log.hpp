#pragma once
/// @file
/// @brief A branch-free natural logarithm for `float` and `double` written so that GCC and
/// Clang vectorise a loop over it at -O3 without -ffast-math (integer and arithmetic
/// operations only, no table, no library call). Used for the entropy of the fused allocation.
///
/// Method: `x = 2^e m` with `m` in `[sqrt(1/2), sqrt(2))`, split off the bit pattern, and
/// `log x = e ln2_hi + (e ln2_lo + log m)` with `e ln2_hi` exact. Then `log m`:
/// - float: `r - r^2/2 + r^3 P(r)` with `r = m - 1` (exact) in `[-0.293, 0.415)` and `P` of
///   degree 7 interpolating `(log(1+r) - r + r^2/2) / r^3` at the 8 Chebyshev nodes of that
///   interval (fitted for this file in 60-digit decimal arithmetic; relative error of
///   `log m` below 2e-8). Division-free: vector division has a low throughput.
/// - double: `2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ... + s^19/19)` with `s = (m - 1) / (m + 1)`,
///   `|s| <= 3 - 2 sqrt(2) < 0.1716` (the first dropped term is below 3e-17 of the result).
///
/// Accuracy, relative to `max(1, |log x|)` (so absolute where `|log x| <= 1`): float within
/// 1.1e-7 of the double log over every float in `[FLT_MIN, 1]` (checked once exhaustively; the
/// test sweeps every 61st), i.e. a few ulp of the result; double within 2.1e-16 of the long
/// double log on a sweep of 4e6 values. `fast_log(1) == 0` exactly.
///
/// Domain: positive normal numbers (`x >= std::numeric_limits<T>::min()`, finite). Zero and
/// subnormals give a finite value within 1 of `log(min())`, so `x fast_log(x)` is 0 at 0 and
/// negligible (below 1e-36 for float) at subnormals: no clamp is needed. Negatives, infinities and
/// NaN give unspecified values.

#include <bit>
#include <cstdint>
#include <type_traits>

namespace star::eigen::detail {

/// @brief The bit layout and `log m` coefficients of `fast_log` for one floating-point type.
template <class Real>
struct fast_log_traits;

template <>
struct fast_log_traits<float> {
  using bits = std::uint32_t;
  static constexpr int mantissa_bits = 23;
  static constexpr bits exponent_bias = 127;
  static constexpr bits sqrt_half = 0x3f3504f3u;   ///< bit pattern of sqrt(1/2), rounded
  static constexpr bits one = 0x3f800000u;         ///< bit pattern of 1
  static constexpr bits integer_magic = 0x4b000000u;  ///< 2^23: low mantissa bits = integer
  static constexpr float ln2_hi = 0.693145751953125f;   ///< ln 2 to 12 bits: `e ln2_hi` is exact
  static constexpr float ln2_lo = 1.42860682030941723212e-6f;  ///< ln 2 - ln2_hi
  /// `P(r)` from the constant term up (see the file comment)
  static constexpr float log1p_tail[] = {0.33333330728190674f,  -0.25000306422569796f,
                                         0.2000104509416068f,   -0.16641281463106394f,
                                         0.14214495923947962f,  -0.1299818376365153f,
                                         0.12622319849228375f,  -0.0790274377239344f};
};

template <>
struct fast_log_traits<double> {
  using bits = std::uint64_t;
  static constexpr int mantissa_bits = 52;
  static constexpr bits exponent_bias = 1023;
  static constexpr bits sqrt_half = 0x3fe6a09e667f3bcdull;
  static constexpr bits one = 0x3ff0000000000000ull;
  static constexpr bits integer_magic = 0x4330000000000000ull;  ///< 2^52
  static constexpr double ln2_hi = 6.93147180369123816490e-01;  ///< ln 2 to 32 bits
  static constexpr double ln2_lo = 1.90821492927058770002e-10;  ///< ln 2 - ln2_hi
  static constexpr int series_terms = 9;                         ///< s^3 .. s^19
};

/// @brief `1/(2k+1) + z/(2k+3) + ... + z^(last-k)/(2 last+1)`, Horner form unrolled at compile
/// time (a loop here would keep the caller's loop from vectorising).
template <class Real, int k, int last>
inline Real atanh_series(Real z) {
  constexpr Real coefficient = Real{1} / static_cast<Real>(2 * k + 1);
  if constexpr (k == last)
    return coefficient;
  else
    return coefficient + z * atanh_series<Real, k + 1, last>(z);
}

/// @brief `log m` for `m` in `[sqrt(1/2), sqrt(2))`; see the file comment.
template <class Real>
inline Real log_reduced(Real m) {
  if constexpr (std::is_same_v<Real, float>) {
    const float r = m - 1.0f;  // exact
    const auto& p = fast_log_traits<float>::log1p_tail;
    const float high = p[4] + r * (p[5] + r * (p[6] + r * p[7]));
    const float tail = p[0] + r * (p[1] + r * (p[2] + r * (p[3] + r * high)));  // Horner
    return r - 0.5f * r * r + r * r * r * tail;
  } else {
    const double s = (m - 1.0) / (m + 1.0);  // |s| < 0.1716; m - 1 is exact
    const double z = s * s;
    const double series = atanh_series<double, 1, fast_log_traits<double>::series_terms>(z);
    return 2.0 * s + 2.0 * s * z * series;  // series = 1/3 + z/5 + ...
  }
}

/// @brief `log(x)` for a positive normal `x`; see the file comment for accuracy and domain.
template <class Real>
inline Real fast_log(Real x) {
  static_assert(std::is_same_v<Real, float> || std::is_same_v<Real, double>);
  using traits = fast_log_traits<Real>;
  using bits = typename traits::bits;
  constexpr bits mantissa_mask = (bits{1} << traits::mantissa_bits) - 1;
  // Adding `one - sqrt_half` carries into the exponent field exactly when the mantissa is at
  // least sqrt(2)'s, so the biased exponent of `shifted` is that of x = 2^e m, m in
  // [sqrt(1/2), sqrt(2)), and its mantissa bits plus `sqrt_half` rebuild m.
  const bits shifted = std::bit_cast<bits>(x) + (traits::one - traits::sqrt_half);
  const Real m = std::bit_cast<Real>((shifted & mantissa_mask) + traits::sqrt_half);
  // e + bias as a float without an int-to-float conversion: the low bits of 2^23 (2^52).
  const Real e = std::bit_cast<Real>((shifted >> traits::mantissa_bits) | traits::integer_magic) -
                 std::bit_cast<Real>(traits::integer_magic + traits::exponent_bias);
  const Real log_m = log_reduced(m);
  return e * traits::ln2_hi + (e * traits::ln2_lo + log_m);
}

}  // namespace star::eigen::detail
