#!/usr/bin/env bash
# The e2s test suite: installs what is missing, builds, runs every test with
# CTest, then fuzzes the URI parser briefly (scripts/fuzz.sh, about a minute).
#
#   scripts/test.sh                   build build/ and run all tests
#   scripts/test.sh --sanitize        the same in build-asan/ (ASan+UBSan)
#   scripts/test.sh --build-dir DIR   the same in DIR
#   scripts/test.sh --no-fuzz         skip the fuzzing
#   scripts/test.sh -- -R uri         extra arguments after -- go to ctest
#
# Exit status: ctest's when it failed, else 1 when the fuzzing found something;
# 1 when setup or the build failed; 0 when everything passed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

setup_args=()
ctest_args=()
build_dir=build
fuzz=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sanitize) setup_args+=("$1"); [[ $build_dir == build ]] && build_dir=build-asan ;;
    --build-dir) setup_args+=("$1" "${2:?--build-dir needs a folder}"); build_dir="$2"; shift ;;
    --no-fuzz) fuzz=0 ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '2,12s/^# \{0,1\}//p' scripts/test.sh; exit 0 ;;
    *) echo "e2s test: unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

start=$(date +%s)
if ! ./scripts/setup.sh "${setup_args[@]}"; then
  echo "e2s test: FAILED: setup or build failed (see above)" >&2
  exit 1
fi

echo "e2s test: running tests in $build_dir/"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --no-tests=error: a suite that finds no tests must not pass.
# --timeout: a backstop for any test that has no TIMEOUT of its own.
ctest --test-dir "$build_dir" --output-on-failure -j2 --no-tests=error --timeout 600 \
  "${ctest_args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

summary=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1)

# Bounded: 20 s per target, two at a time (scripts/fuzz.sh --help).
fuzz_rc=0
if [[ $fuzz -eq 1 ]]; then
  echo "e2s test: fuzzing the URI parser"
  ./scripts/fuzz.sh || fuzz_rc=$?
fi

elapsed=$(( $(date +%s) - start ))
if [[ $rc -ne 0 ]]; then
  echo "e2s test: FAILED (ctest exit $rc): ${summary:-see the output above} (${elapsed} s)"
  exit "$rc"
elif [[ $fuzz_rc -ne 0 ]]; then
  echo "e2s test: FAILED: ${summary:-all tests passed}, but fuzzing found a problem (see above) (${elapsed} s)"
  exit 1
fi
echo "e2s test: PASSED: ${summary:-all tests passed} (${elapsed} s)"
exit 0
