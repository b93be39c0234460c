# Install rules and the CMake package: `find_package(star CONFIG [COMPONENTS eigen ...])` against
# an install prefix, or against this build tree with `-Dstar_DIR=<build dir>`.
#
# Layout under the prefix: the core headers (everything under include/star except the component
# headers), each built component's headers, and in ${STAR_INSTALL_CMAKEDIR}:
#   starConfig.cmake, starConfigVersion.cmake   the package (cmake/starConfig.cmake.in)
#   starTargets.cmake                           star::star
#   star-<c>-component.cmake                    component <c>: its find_dependency() calls
#   star-<c>-targets.cmake                      star::<c>
# Install components (cmake --install --component) have the same names: star, eigen, ...

include(CMakePackageConfigHelpers)

set(STAR_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/star" CACHE STRING
    "Where star's CMake package files are installed, relative to the prefix")

# Core: headers minus every component's own headers, and star::star.
set(star_component_header_excludes)
foreach(component IN LISTS STAR_COMPONENTS)
  list(APPEND star_component_header_excludes
       REGEX "/include/star/${component}(\\.hpp|/.*)?$" EXCLUDE)
endforeach()
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/star"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        COMPONENT star
        FILES_MATCHING PATTERN "*.hpp" ${star_component_header_excludes})
install(TARGETS star EXPORT star-targets COMPONENT star)
install(EXPORT star-targets
        FILE starTargets.cmake
        NAMESPACE star::
        DESTINATION "${STAR_INSTALL_CMAKEDIR}"
        COMPONENT star)
export(EXPORT star-targets FILE "${PROJECT_BINARY_DIR}/starTargets.cmake" NAMESPACE star::)

# Each component whose target exists: headers, target, its export set and its config fragment.
set(star_installed_components)
foreach(component IN LISTS STAR_COMPONENTS)
  if(NOT TARGET star_${component})
    continue()
  endif()
  list(APPEND star_installed_components ${component})
  set(headers "${PROJECT_SOURCE_DIR}/include/star/${component}.hpp")
  if(EXISTS "${headers}")
    install(FILES "${headers}" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/star" COMPONENT ${component})
  endif()
  if(IS_DIRECTORY "${PROJECT_SOURCE_DIR}/include/star/${component}")
    install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/star/${component}"
            DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/star"
            COMPONENT ${component}
            FILES_MATCHING PATTERN "*.hpp" PATTERN "*.cuh")
  endif()
  install(TARGETS star_${component} EXPORT star-${component}-targets COMPONENT ${component})
  install(EXPORT star-${component}-targets
          FILE star-${component}-targets.cmake
          NAMESPACE star::
          DESTINATION "${STAR_INSTALL_CMAKEDIR}"
          COMPONENT ${component})
  export(EXPORT star-${component}-targets
         FILE "${PROJECT_BINARY_DIR}/star-${component}-targets.cmake" NAMESPACE star::)

  list(JOIN STAR_${component}_DEPENDENCIES "\n" STAR_COMPONENT_DEPENDENCIES)
  set(STAR_COMPONENT ${component})
  configure_file("${PROJECT_SOURCE_DIR}/cmake/star-component.cmake.in"
                 "${PROJECT_BINARY_DIR}/star-${component}-component.cmake" @ONLY)
  install(FILES "${PROJECT_BINARY_DIR}/star-${component}-component.cmake"
          DESTINATION "${STAR_INSTALL_CMAKEDIR}" COMPONENT ${component})
endforeach()

# The package files, once for the install prefix and once for this build tree.
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/starConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/package/starConfig.cmake"
                              INSTALL_DESTINATION "${STAR_INSTALL_CMAKEDIR}")
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/starConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/starConfig.cmake"
                              INSTALL_DESTINATION "${PROJECT_BINARY_DIR}"
                              INSTALL_PREFIX "${PROJECT_BINARY_DIR}")
# Before 1.0 a minor release may break the API: find_package(star 0.1) accepts 0.1.x only.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/starConfigVersion.cmake"
                                 VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY SameMinorVersion
                                 ARCH_INDEPENDENT)
install(FILES "${PROJECT_BINARY_DIR}/package/starConfig.cmake"
              "${PROJECT_BINARY_DIR}/starConfigVersion.cmake"
        DESTINATION "${STAR_INSTALL_CMAKEDIR}"
        COMPONENT star)

list(JOIN star_installed_components " " star_installed_components_text)
message(STATUS "star: install rules enabled: prefix ${CMAKE_INSTALL_PREFIX}, package in "
               "${STAR_INSTALL_CMAKEDIR}, components: star ${star_installed_components_text}"
               " (build-tree package: -Dstar_DIR=${PROJECT_BINARY_DIR})")
