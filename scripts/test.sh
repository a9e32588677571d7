#!/usr/bin/env bash
# The e2s test suite: installs what is missing, builds, runs every test with
# CTest, builds the other configurations, then fuzzes the parsers briefly.
#
#   scripts/test.sh                   the whole suite (about 13 minutes cold on 2 cores, 3 warm)
#   scripts/test.sh --one-build       only build/ and its tests: no other configurations
#   scripts/test.sh --sanitize        the tests in build-asan/ (ASan+UBSan), nothing else
#   scripts/test.sh --build-dir DIR   the tests in DIR instead of build/
#   scripts/test.sh --no-fuzz         skip the fuzzing
#   scripts/test.sh -- -R uri         extra arguments after -- go to ctest
#
# The configurations: build/ is g++ Release with every test; build-relwithdebinfo/
# (g++ RelWithDebInfo) and build-clang/ (clang-14 Release) build the library,
# the command, the examples and the benchmarks, and the command-line tests of
# build/ run again against each one's e2s command.
#
# Exit status: ctest's when it failed, else 1 when a build, the other
# configurations' tests or the fuzzing failed; 0 when everything passed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

setup_args=()
ctest_args=()
build_dir=build
fuzz=1
matrix=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sanitize) setup_args+=("$1"); matrix=0; [[ $build_dir == build ]] && build_dir=build-asan ;;
    --build-dir) setup_args+=("$1" "${2:?--build-dir needs a folder}"); build_dir="$2"; shift ;;
    --one-build) matrix=0 ;;
    --no-fuzz) fuzz=0 ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '2,18s/^# \{0,1\}//p' scripts/test.sh; exit 0 ;;
    *) echo "e2s test: unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ ${#ctest_args[@]} -eq 0 ]] || matrix=0  # a chosen subset of tests is a quick run

start=$(date +%s)
seconds_since() { echo $(( $(date +%s) - $1 )); }
if ! ./scripts/setup.sh "${setup_args[@]}"; then
  echo "e2s test: FAILED: setup or build failed (see above)" >&2
  exit 1
fi
built=$(seconds_since "$start")

echo "e2s test: running tests in $build_dir/"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
tests_start=$(date +%s)
# -j3 on 2 cores: most tests wait on servers and timers, not the CPU.
# --no-tests=error: a suite that finds no tests must not pass.
# --timeout: a backstop for any test that has no TIMEOUT of its own.
ctest --test-dir "$build_dir" --output-on-failure -j3 --no-tests=error --timeout 600 \
  "${ctest_args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1)
tested=$(seconds_since "$tests_start")

# Other configurations: each must build with -Werror (optimiser warnings
# differ between -O2 and -O3, and between compilers), and its e2s command
# must pass the command-line tests.
matrix_failed=()
if [[ $matrix -eq 1 ]]; then
  matrix_start=$(date +%s)
  cli_tests='^(cli_test|cache_cli_test|hf_cli_test|ngc_cli_test|mirror_cli_test)\.'
  for config in "build-relwithdebinfo --build-type RelWithDebInfo" "build-clang --clang"; do
    read -r dir options <<<"$config"
    # shellcheck disable=SC2086  # options are words
    if ! ./scripts/setup.sh --quiet --no-tests --build-dir "$dir" $options; then
      matrix_failed+=("$dir (build)")
      continue
    fi
    echo "e2s test: command-line tests against $dir/e2s"
    if ! E2S_TEST_CLI="$PWD/$dir/e2s" ctest --test-dir "$build_dir" -j2 --output-on-failure \
        --no-tests=error --timeout 600 -R "$cli_tests" >"$log" 2>&1; then
      cat "$log"
      matrix_failed+=("$dir (command-line tests)")
    else
      grep -E '^[0-9]+% tests passed' "$log" | tail -n 1
    fi
  done
  echo "e2s test: other configurations took $(seconds_since "$matrix_start") s"
fi

# Bounded: 10 s per target, two at a time (scripts/fuzz.sh --help).
fuzz_rc=0
if [[ $fuzz -eq 1 ]]; then
  echo "e2s test: fuzzing the parsers"
  ./scripts/fuzz.sh 10 || fuzz_rc=$?
fi

times="build ${built} s, tests ${tested} s, all $(seconds_since "$start") s"
if [[ $rc -ne 0 ]]; then
  echo "e2s test: FAILED (ctest exit $rc): ${summary:-see the output above} ($times)"
  exit "$rc"
elif [[ ${#matrix_failed[@]} -gt 0 ]]; then
  echo "e2s test: FAILED: ${summary:-all tests passed}, but not in ${matrix_failed[*]} ($times)"
  exit 1
elif [[ $fuzz_rc -ne 0 ]]; then
  echo "e2s test: FAILED: ${summary:-all tests passed}, but fuzzing found a problem (see above) ($times)"
  exit 1
fi
echo "e2s test: PASSED: ${summary:-all tests passed} ($times)"
exit 0
