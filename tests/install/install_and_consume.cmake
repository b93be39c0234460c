# ctest driver (cmake -P): installs the star build STAR_BINARY_DIR into a prefix under WORK_DIR,
# then configures, builds and runs the consumer project next to this script three ways
#   installed     find_package(star) with CMAKE_PREFIX_PATH = the prefix
#   build-tree    find_package(star) with star_DIR = STAR_BINARY_DIR
#   subdirectory  add_subdirectory(STAR_SOURCE_DIR)
# and checks that requesting a component the package lacks (`nonexistent`) fails to configure,
# naming it.
# WORK_DIR is removed at the end, whatever the outcome.
#
# Inputs (-D): STAR_SOURCE_DIR, STAR_BINARY_DIR, WORK_DIR, GENERATOR, CXX_COMPILER, CONFIG.

foreach(input STAR_SOURCE_DIR STAR_BINARY_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT ${input})
    message(FATAL_ERROR "install_and_consume: -D${input}=... is required")
  endif()
endforeach()
if(NOT CONFIG)
  set(CONFIG Release)
endif()
set(consumer_source "${CMAKE_CURRENT_LIST_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(fail what output)
  file(REMOVE_RECURSE "${WORK_DIR}")
  message(FATAL_ERROR "install_and_consume: ${what}\n${output}")
endfunction()

# Runs a command; on a non-zero exit fails with its output, else returns it in `out_var`.
function(run out_var what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status OUTPUT_VARIABLE output
                  ERROR_VARIABLE output)
  if(NOT status EQUAL 0)
    fail("${what} failed (${status}): ${ARGN}" "${output}")
  endif()
  message(STATUS "${what}: ok")
  set(${out_var} "${output}" PARENT_SCOPE)
endfunction()

# Configures the consumer in WORK_DIR/<name> to request `components` (a list); ARGN are extra
# -D options. Sets `out_var` to the exit status followed by the output.
function(configure_consumer out_var name components)
  set(dir "${WORK_DIR}/${name}")
  file(WRITE "${dir}-cache.cmake" "set(STAR_CONSUMER_COMPONENTS \"${components}\" CACHE STRING \"\")\n")
  execute_process(COMMAND "${CMAKE_COMMAND}" -S "${consumer_source}" -B "${dir}" -G "${GENERATOR}"
                          -C "${dir}-cache.cmake" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
                          "-DCMAKE_BUILD_TYPE=${CONFIG}" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
                          ${ARGN}
                  RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output)
  set(${out_var} "${status}" "${output}" PARENT_SCOPE)
endfunction()

# Configures, builds and runs the consumer in WORK_DIR/<name>, checking that star came from
# `expected_star_dir` when it is not empty.
function(consume name expected_star_dir components)
  configure_consumer(result ${name} "${components}" ${ARGN})
  list(POP_FRONT result status)
  if(NOT status EQUAL 0)
    fail("${name}: configuring the consumer failed" "${result}")
  endif()
  string(FIND "${result}" " in ${expected_star_dir}\n" found_in_expected_dir)
  if(expected_star_dir AND found_in_expected_dir EQUAL -1)
    fail("${name}: star was not found in ${expected_star_dir}" "${result}")
  endif()
  message(STATUS "${name}: configure: ok")
  run(output "${name}: build" "${CMAKE_COMMAND}" --build "${WORK_DIR}/${name}" --config "${CONFIG}")
  file(GLOB_RECURSE executable LIST_DIRECTORIES false
       "${WORK_DIR}/${name}/star_consumer" "${WORK_DIR}/${name}/star_consumer.exe")
  if(NOT executable)
    fail("${name}: no star_consumer executable in ${WORK_DIR}/${name}" "")
  endif()
  run(output "${name}: run" ${executable})
  message(STATUS "${output}")
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
run(output "cmake --install" "${CMAKE_COMMAND}" --install "${STAR_BINARY_DIR}" --prefix "${prefix}"
    --config "${CONFIG}")
file(GLOB_RECURSE config_file "${prefix}/starConfig.cmake")
list(LENGTH config_file config_files)
if(NOT config_files EQUAL 1 OR NOT EXISTS "${prefix}/include/star/star.hpp")
  fail("the install lacks one starConfig.cmake or star/star.hpp" "${output}")
endif()
get_filename_component(installed_star_dir "${config_file}" DIRECTORY)

# The components this build provides (eigen when Eigen was found), all requested.
file(GLOB components RELATIVE "${installed_star_dir}" "${installed_star_dir}/star-*-component.cmake")
list(TRANSFORM components REPLACE "^star-(.*)-component\\.cmake$" "\\1")
message(STATUS "installed components: star ${components}")

consume(installed "${installed_star_dir}" "${components}" "-DCMAKE_PREFIX_PATH=${prefix}")
consume(build-tree "${STAR_BINARY_DIR}" "${components}" "-Dstar_DIR=${STAR_BINARY_DIR}")
consume(subdirectory "" "" "-DSTAR_CONSUMER_SOURCE_DIR=${STAR_SOURCE_DIR}")

configure_consumer(result missing-component "${components};nonexistent"
                   "-DCMAKE_PREFIX_PATH=${prefix}")
list(POP_FRONT result status)
if(status EQUAL 0)
  fail("find_package(star COMPONENTS nonexistent) succeeded; it must fail" "${result}")
endif()
string(REGEX REPLACE "[ \t\r\n]+" " " message_text "${result}")
if(NOT message_text MATCHES "star component 'nonexistent' was requested")
  fail("find_package(star COMPONENTS nonexistent) failed without naming the component" "${result}")
endif()
message(STATUS "missing-component: configure fails naming 'nonexistent': ok")

file(REMOVE_RECURSE "${WORK_DIR}")
