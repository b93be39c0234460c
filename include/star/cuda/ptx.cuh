#pragma once
/// @file
/// @brief The PTX instructions that the kernels use: of sm_80 and later, the tensor-core product
/// `mma.sync.m16n8k16` and asynchronous copies to shared memory (`cp.async`) — compiled for an
/// older architecture they trap, so a launcher must check what its kernel was compiled for —
/// and the approximate `2^x` and an acquire-release counter of every architecture.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace star::cuda {

/// @brief `c += a b` for a 16x16 row-major `a` and a 16x8 column-major `b` of `T` (float16 or
/// bfloat16), float32 `c`, in the register layout of PTX `mma.m16n8k16`.
template <class T>
__device__ inline void mma_16x8x16(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                   unsigned b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, __half>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // callers launch only code compiled for sm_80 or later
#endif
}

/// @brief `2^x`, approximately (`ex2.approx.ftz.f32`: relative error below 2^-22, subnormal
/// inputs and results flushed to zero).
__device__ inline float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

/// @brief Adds 1 to `*counter` (global memory) and returns the count before, with
/// acquire-release order at device scope: the writes this thread made before are visible to
/// any thread that later sees the new count, and the writes of the threads that counted before
/// are visible to this one (`atom.acq_rel.gpu` on sm_70 and later, fences around a relaxed
/// add before that).
__device__ inline unsigned count_arrival(unsigned* counter) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  unsigned before;
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], 1;\n"
               : "=r"(before)
               : "l"(counter)
               : "memory");
  return before;
#else
  __threadfence();
  const unsigned before = atomicAdd(counter, 1u);
  __threadfence();
  return before;
#endif
}

/// @brief Starts copying `Bytes` (16 or 4) from `source` to `target` in shared memory without
/// waiting (`cp.async`; 16 bytes bypass L1); zeros where `valid` is false (then nothing is read).
template <int Bytes>
__device__ inline void copy_async(void* target, const void* source, bool valid) {
  static_assert(Bytes == 16 || Bytes == 4);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto address = static_cast<unsigned>(__cvta_generic_to_shared(target));
  const int size = valid ? Bytes : 0;
  if constexpr (Bytes == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(source),
                 "r"(size)
                 : "memory");
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(address), "l"(source),
                 "r"(size)
                 : "memory");
#else
  __trap();  // callers launch only code compiled for sm_80 or later
#endif
}

/// @brief Closes the group of copies this thread started since the last call.
__device__ inline void commit_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

/// @brief Waits until at most `Pending` of this thread's groups of copies are unfinished.
template <int Pending>
__device__ inline void wait_for_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
#endif
}

}  // namespace star::cuda
