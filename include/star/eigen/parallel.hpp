#pragma once
/// @file
/// @brief Static work splitting over OpenMP threads for the Eigen backend. Each index of a
/// range is handled by exactly one thread, so results do not depend on the thread count.

#include <cstdint>
#include <exception>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace star::eigen::detail {

/// @brief Below this many scalar operations a kernel runs on the calling thread.
inline constexpr std::int64_t min_parallel_work = std::int64_t{1} << 15;

/// @brief The number of threads a parallel region started here would use (1 without OpenMP).
inline std::int64_t available_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

/// @brief Calls `body(begin, end)` on disjoint contiguous sub-ranges covering `[0, count)`:
/// one per OpenMP thread when `work` exceeds `min_parallel_work`, else once on this thread.
/// An exception `body` throws on a thread (which must not leave the parallel region, or the
/// runtime terminates) is caught; once every range has returned or thrown, the first one
/// caught is rethrown here.
/// @param count  number of independent work items
/// @param work   estimated scalar operations of all items together
template <class Body>
void parallel_ranges(std::int64_t count, std::int64_t work, const Body& body) {
  if (count <= 0) return;
#ifdef _OPENMP
  if (count > 1 && work > min_parallel_work && omp_get_max_threads() > 1 && !omp_in_parallel()) {
    std::exception_ptr first_error;
#pragma omp parallel
    {
      const std::int64_t threads = omp_get_num_threads();
      const std::int64_t thread = omp_get_thread_num();
      const std::int64_t begin = count * thread / threads;
      const std::int64_t end = count * (thread + 1) / threads;
      try {
        if (begin < end) body(begin, end);
      } catch (...) {
#pragma omp critical(star_parallel_ranges_error)
        if (!first_error) first_error = std::current_exception();
      }
    }
    if (first_error) std::rethrow_exception(first_error);
    return;
  }
#else
  (void)work;
#endif
  body(std::int64_t{0}, count);
}

}  // namespace star::eigen::detail
