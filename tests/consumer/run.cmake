# Installs an e2s build into a temporary prefix, then configures, builds and runs
# the consumer project against it. Fails on the first step that fails.
#
#   cmake -DE2S_BUILD_DIR=... -DE2S_CONSUMER_SOURCE_DIR=... -DE2S_CONSUMER_WORK_DIR=...
#         -DE2S_GENERATOR=... [-DE2S_CXX_COMPILER=...] [-DE2S_CONFIG=...]
#         [-DE2S_VERSION=...] [-DE2S_LINK_FLAGS=...] -P run.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS E2S_BUILD_DIR E2S_CONSUMER_SOURCE_DIR E2S_CONSUMER_WORK_DIR E2S_GENERATOR)
  if(NOT ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT E2S_CONFIG)
  set(E2S_CONFIG RelWithDebInfo)
endif()

set(prefix "${E2S_CONSUMER_WORK_DIR}/prefix")
set(binary "${E2S_CONSUMER_WORK_DIR}/build")
file(REMOVE_RECURSE "${E2S_CONSUMER_WORK_DIR}")
file(MAKE_DIRECTORY "${E2S_CONSUMER_WORK_DIR}")

function(step name)
  message(STATUS "consumer: ${name}")
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "consumer: ${name} failed (${result}):\n${output}")
  endif()
  set(step_output "${output}" PARENT_SCOPE)
endfunction()

step("install e2s into ${prefix}"
  "${CMAKE_COMMAND}" --install "${E2S_BUILD_DIR}" --prefix "${prefix}" --config "${E2S_CONFIG}")

file(GLOB_RECURSE config_files "${prefix}/*/e2sConfig.cmake")
if(NOT config_files)
  message(FATAL_ERROR "consumer: the install put no e2sConfig.cmake under ${prefix}")
endif()
if(NOT EXISTS "${prefix}/bin/e2s")
  message(FATAL_ERROR "consumer: the install put no e2s command in ${prefix}/bin")
endif()

set(configure_args
  -S "${E2S_CONSUMER_SOURCE_DIR}" -B "${binary}" -G "${E2S_GENERATOR}"
  "-DCMAKE_BUILD_TYPE=${E2S_CONFIG}"
  "-DCMAKE_PREFIX_PATH=${prefix}"
  "-DE2S_EXPECTED_PREFIX=${prefix}"
  "-DE2S_EXPECTED_VERSION=${E2S_VERSION}")
if(E2S_CXX_COMPILER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${E2S_CXX_COMPILER}")
endif()
if(E2S_LINK_FLAGS)
  list(APPEND configure_args "-DCMAKE_EXE_LINKER_FLAGS=${E2S_LINK_FLAGS}")
endif()
step("configure project/ with find_package(e2s)" "${CMAKE_COMMAND}" ${configure_args})
step("build project/" "${CMAKE_COMMAND}" --build "${binary}" --config "${E2S_CONFIG}")

find_program(app NAMES e2s_consumer PATHS "${binary}" "${binary}/${E2S_CONFIG}" NO_DEFAULT_PATH)
if(NOT app)
  message(FATAL_ERROR "consumer: e2s_consumer was not built in ${binary}")
endif()
step("run e2s_consumer" "${app}")
message(STATUS "consumer: ${step_output}")
