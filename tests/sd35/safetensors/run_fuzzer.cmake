# ctest fuzz_safetensors_bounded: builds the libFuzzer target (incrementally), then runs it for
# SECONDS over a fresh corpus seeded from SEEDS. Fails on any finding, leaving the reproducer
# in WORK_DIR. Prints "fuzz_safetensors_bounded: SKIPPED" (ctest marks the test skipped) when
# this build has no fuzzer (SKIP_REASON says why).
if(SKIP_REASON OR NOT FUZZER)
  message("fuzz_safetensors_bounded: SKIPPED: ${SKIP_REASON}")
  return()
endif()

execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET}
                RESULT_VARIABLE build_result)
if(NOT build_result EQUAL 0)
  message(FATAL_ERROR "fuzz_safetensors_bounded: building ${TARGET} failed")
endif()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR}/corpus)
execute_process(COMMAND ${FUZZER} -max_total_time=${SECONDS} -rss_limit_mb=2048 -timeout=10
                        -dict=${DICTIONARY} -artifact_prefix=${WORK_DIR}/ -print_final_stats=1
                        ${WORK_DIR}/corpus ${SEEDS}
                RESULT_VARIABLE fuzz_result)
if(NOT fuzz_result EQUAL 0)
  message(FATAL_ERROR "fuzz_safetensors_bounded: the fuzzer found a failing input (exit "
                      "${fuzz_result}); reproducer in ${WORK_DIR} (run ${FUZZER} <file>)")
endif()
message("fuzz_safetensors_bounded: no finding in ${SECONDS} s")
