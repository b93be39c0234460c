# The library's INTERFACE targets: star::star (framework-free core, reference backend) and
# star::eigen (the Eigen CPU backend, multithreaded with OpenMP when available).
#
# Optional components follow one convention, which the install rules, starConfig.cmake and the
# header self-containment check rely on: component <c> is the target star_<c> (alias star::<c>,
# EXPORT_NAME <c>), owns the public headers include/star/<c>.hpp and include/star/<c>/, and
# lists in STAR_<c>_DEPENDENCIES the find_dependency() calls a consumer needs. A component is
# declared in STAR_COMPONENTS whether or not its target could be made here.

set(STAR_COMPONENTS eigen)

add_library(star INTERFACE)
add_library(star::star ALIAS star)
target_include_directories(star INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_features(star INTERFACE cxx_std_20)
set_target_properties(star PROPERTIES EXPORT_NAME star)

find_package(Eigen3 3.4 QUIET NO_MODULE)
find_package(OpenMP QUIET COMPONENTS CXX)
if(Eigen3_FOUND)
  add_library(star_eigen INTERFACE)
  add_library(star::eigen ALIAS star_eigen)
  target_link_libraries(star_eigen INTERFACE star Eigen3::Eigen)
  set(STAR_eigen_DEPENDENCIES "find_dependency(Eigen3 3.4 NO_MODULE)")
  if(OpenMP_CXX_FOUND)
    target_link_libraries(star_eigen INTERFACE OpenMP::OpenMP_CXX)
    list(APPEND STAR_eigen_DEPENDENCIES "find_dependency(OpenMP COMPONENTS CXX)")
  endif()
  set_target_properties(star_eigen PROPERTIES EXPORT_NAME eigen)
  message(STATUS "star: Eigen ${Eigen3_VERSION} found, star::eigen enabled (OpenMP: ${OpenMP_CXX_FOUND})")
else()
  message(STATUS "star: Eigen3 >= 3.4 not found, star::eigen disabled (Debian: apt-get install libeigen3-dev)")
endif()

# star::torch: the LibTorch backend and adapters (namespace star::libtorch). Debian:
# apt-get install libtorch-dev; a pip PyTorch: -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;
# print(torch.utils.cmake_prefix_path)').
# STAR_TORCH_HAS_CUDA: whether that LibTorch has CUDA (TRUE/FALSE), the one test the tests,
# benchmarks and examples use.
list(APPEND STAR_COMPONENTS torch)
set(STAR_TORCH_HAS_CUDA FALSE)
find_package(Torch QUIET)
if(Torch_FOUND)
  add_library(star_torch INTERFACE)
  add_library(star::torch ALIAS star_torch)
  target_link_libraries(star_torch INTERFACE star torch)
  set(STAR_torch_DEPENDENCIES "find_dependency(Torch)")
  set_target_properties(star_torch PROPERTIES EXPORT_NAME torch)
  if(TORCH_CUDA_LIBRARIES OR TARGET torch_cuda)
    set(STAR_TORCH_HAS_CUDA TRUE)
    set(star_torch_cuda_text "with CUDA")
  else()
    set(star_torch_cuda_text "CPU only")
  endif()
  message(STATUS "star: LibTorch ${Torch_VERSION} found (${star_torch_cuda_text}), star::torch enabled")
else()
  message(STATUS "star: LibTorch not found, star::torch disabled (Debian: apt-get install "
                 "libtorch-dev; pip PyTorch: -DCMAKE_PREFIX_PATH=<torch.utils.cmake_prefix_path>)")
endif()

# star::cuda: the fused CUDA kernels (header-only .cuh under include/star/cuda/, compiled by
# the consumer's nvcc for its own architectures). When nvcc is found, CUDA is enabled with
# CMAKE_CUDA_ARCHITECTURES 90 unless set (CI compiles the kernels and their tests without a
# GPU: the compile gate). C++20 for CUDA is a compile option because CUDA_STANDARD 20 fails
# at generate time with CMake 3.25 and nvcc 13; a consumer's CMAKE_CUDA_STANDARD below 20
# comes later on nvcc's command line and wins, so leave it unset (or 20) for star::cuda.
list(APPEND STAR_COMPONENTS cuda)
include(CheckLanguage)
check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  add_library(star_cuda INTERFACE)
  add_library(star::cuda ALIAS star_cuda)
  target_link_libraries(star_cuda INTERFACE star CUDA::cudart)
  target_compile_options(star_cuda INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20>
                                             $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr>)
  set(STAR_cuda_DEPENDENCIES "find_dependency(CUDAToolkit)")
  set_target_properties(star_cuda PROPERTIES EXPORT_NAME cuda)
  message(STATUS "star: nvcc ${CMAKE_CUDA_COMPILER_VERSION} found, star::cuda enabled "
                 "(architectures ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "star: no CUDA compiler, star::cuda disabled (set CMAKE_CUDA_COMPILER or put nvcc on PATH)")
endif()

# A project that add_subdirectory()s star links star::<c> from its own directories, where the
# imported targets of star's find_package() calls above (torch, torch_cpu, CUDA::cudart,
# Eigen3::Eigen, ...) are not visible unless global (CMake >= 3.21 lists them).
if(NOT STAR_IS_TOP_LEVEL AND CMAKE_VERSION VERSION_GREATER_EQUAL 3.21)
  get_directory_property(star_imported_targets IMPORTED_TARGETS)
  foreach(target IN LISTS star_imported_targets)
    get_target_property(star_imported_global ${target} IMPORTED_GLOBAL)
    if(NOT star_imported_global)
      set_target_properties(${target} PROPERTIES IMPORTED_GLOBAL TRUE)
    endif()
  endforeach()
elseif(NOT STAR_IS_TOP_LEVEL AND (TARGET star_torch OR TARGET star_cuda))
  message(WARNING "star: with CMake ${CMAKE_VERSION} (< 3.21) a project that add_subdirectory()s "
                  "star cannot link star::torch or star::cuda unless it calls find_package(Torch) "
                  "or find_package(CUDAToolkit) itself first; or use find_package(star).")
endif()
