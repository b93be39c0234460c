// Computes a softmax with star's reference backend (and the Eigen and LibTorch backends when
// linked), prints it, and exits non-zero unless it equals [1, 2, 3] / 6.
#include <cmath>
#include <cstdio>
#include <vector>

#include <star/star.hpp>
#ifdef STAR_CONSUMER_WITH_EIGEN
#include <star/eigen.hpp>
#endif
#ifdef STAR_CONSUMER_WITH_TORCH
#include <star/torch.hpp>
#endif

namespace {

template <star::complete_backend B>
int check_softmax(const char* name, const B& be) {
  const std::vector<double> logits{0.0, std::log(2.0), std::log(3.0)};
  const auto x = be.from_host(logits, {1, 3});             // [1, 3]
  const auto p = be.to_host(star::ops::softmax(be, x, -1));  // [1, 3]
  int wrong = p.size() == 3 ? 0 : 1;
  std::printf("%s softmax:", name);
  for (std::size_t i = 0; i < p.size(); ++i) {
    std::printf(" %.9f", p[i]);
    if (!(std::abs(p[i] - static_cast<double>(i + 1) / 6.0) < 1e-6)) ++wrong;
  }
  std::printf(wrong ? "  WRONG\n" : "\n");
  return wrong;
}

}  // namespace

int main() {
  int wrong = check_softmax("reference", star::reference_backend{});
#ifdef STAR_CONSUMER_WITH_EIGEN
  wrong += check_softmax("eigen<double>", star::eigen::backend<double>{});
#endif
#ifdef STAR_CONSUMER_WITH_TORCH
  wrong += check_softmax("libtorch", star::libtorch::backend{});
#endif
  return wrong == 0 ? 0 : 1;
}
