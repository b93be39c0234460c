# The library's INTERFACE targets: star::star (framework-free core, reference backend) and
# star::eigen (the Eigen CPU backend, multithreaded with OpenMP when available).

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
  if(OpenMP_CXX_FOUND)
    target_link_libraries(star_eigen INTERFACE OpenMP::OpenMP_CXX)
  endif()
  set_target_properties(star_eigen PROPERTIES EXPORT_NAME eigen)
  message(STATUS "star: Eigen ${Eigen3_VERSION} found, star::eigen enabled (OpenMP: ${OpenMP_CXX_FOUND})")
else()
  message(STATUS "star: Eigen3 >= 3.4 not found, star::eigen disabled (Debian: apt-get install libeigen3-dev)")
endif()
