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
