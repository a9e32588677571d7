#!/usr/bin/env bash
# Fuzzes the URI and file path parser (src/uri/) with libFuzzer, ASan and UBSan.
#
#   scripts/fuzz.sh            run every target for 20 s, two at a time
#   scripts/fuzz.sh SECONDS    run every target for SECONDS
#
# Installs clang-14 and libfuzzer when missing (scripts/setup.sh --fuzz), builds
# fuzz/ in build-fuzz/ and starts each target from its seed corpus
# fuzz/corpus/<target>/ (new inputs go to build-fuzz/corpus/<target>/).
# An input that crashes or breaks a rule of fuzz/parser_checks.hpp is saved in
# fuzz/regressions/<target>/, where the replay test keeps checking it.
#
# Exit status: 0 when no target found anything, 1 otherwise or when the build failed.
set -euo pipefail

say() { echo "e2s fuzz: $*"; }
die() { echo "e2s fuzz: error: $*" >&2; exit 1; }

seconds=20
case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *[!0-9]*) die "SECONDS must be a whole number (got \"$1\"); see --help" ;;
  *) seconds=$1 ;;
esac
[[ $seconds -gt 0 ]] || die "SECONDS must be at least 1"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/setup.sh --fuzz --no-build --quiet ||
  die "could not install clang-14 and libclang-rt-14-dev"
command -v clang++-14 >/dev/null 2>&1 ||
  die "clang++-14 not found; install clang-14 and libclang-rt-14-dev"

build_dir=build-fuzz
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S fuzz -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null ||
    die "configuring $build_dir/ failed"
fi
say "building the targets in $build_dir/"
if ! cmake --build "$build_dir" >"$build_dir/build.log" 2>&1; then
  cat "$build_dir/build.log" >&2
  die "build failed"
fi

targets=(root file_path percent url_origin record)
jobs=$(nproc 2>/dev/null || echo 2)
[[ $jobs -le ${#targets[@]} ]] || jobs=${#targets[@]}

# A target runs until -max_total_time; `timeout` only catches a hang that
# libFuzzer's own per-input -timeout missed.
run_target() {
  local target=$1
  local artifacts="$build_dir/artifacts/$target/"
  rm -rf "$artifacts"
  mkdir -p "$artifacts" "$build_dir/corpus/$target"
  # Past findings are replayed too, here under the sanitizers.
  local seeds=("fuzz/corpus/$target")
  [[ -d "fuzz/regressions/$target" ]] && seeds+=("fuzz/regressions/$target")
  timeout --kill-after=10 $((seconds + 60)) "$build_dir/fuzz_$target" \
    -max_total_time="$seconds" -max_len=256 -timeout=10 -rss_limit_mb=2048 \
    -dict=fuzz/uri.dict -artifact_prefix="$artifacts" -print_final_stats=1 \
    "$build_dir/corpus/$target" "${seeds[@]}" >"$build_dir/$target.log" 2>&1
}

say "running ${#targets[@]} targets for $seconds s each, $jobs at a time"
start=$(date +%s)
failed=()
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  pids=()
  batch=("${targets[@]:i:jobs}")
  for target in "${batch[@]}"; do
    run_target "$target" &
    pids+=($!)
  done
  for j in "${!batch[@]}"; do
    target=${batch[$j]}
    if wait "${pids[$j]}"; then
      runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build_dir/$target.log")
      say "$target: ok (${runs:-?} inputs)"
      continue
    fi
    failed+=("$target")
    mkdir -p "fuzz/regressions/$target"
    saved=()
    for artifact in "$build_dir/artifacts/$target"/*; do
      [[ -f "$artifact" ]] || continue
      cp "$artifact" "fuzz/regressions/$target/"
      saved+=("fuzz/regressions/$target/$(basename "$artifact")")
    done
    echo "e2s fuzz: $target: FAILED (full log: $build_dir/$target.log):" >&2
    grep -E 'rule broken|ERROR|runtime error|SUMMARY|^Base64' "$build_dir/$target.log" >&2 ||
      tail -n 25 "$build_dir/$target.log" >&2
    say "$target: input saved as ${saved[*]:-(none: see the log)}"
  done
done

elapsed=$(( $(date +%s) - start ))
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "e2s fuzz: FAILED: ${failed[*]} (${elapsed} s); fix the parser and keep the saved input" \
    "as a regression (rename it to say what it tests)" >&2
  exit 1
fi
say "PASSED: no target found a crash or a broken rule (${elapsed} s)"
