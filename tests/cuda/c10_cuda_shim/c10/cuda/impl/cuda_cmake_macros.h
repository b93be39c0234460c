#pragma once
// For the compile gate of star/torch/cuda_ops.hpp only (see CMakeLists.txt here): a CPU-only
// LibTorch installs c10's CUDA headers but not this file, which a CUDA build of LibTorch
// generates with exactly this content.
#define C10_CUDA_BUILD_SHARED_LIBS
