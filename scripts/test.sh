#!/usr/bin/env bash
# Sets up (idempotent: packages, DuckDB, incremental build) and runs the whole test suite, the
# dashboard's browser test, then the same suite under ASan + UBSan, the CLI option fuzzer on the
# sanitizer build and the parser fuzzers.
# Tests that need ../shared (the goldens) read it beside the repo. Extra args go to ctest.
# Ends with a table of each step's wall time; a failing step stops the run (exit 1) after it.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
names=() secs=()
table() {
  printf '\n%-28s %8s\n' "step" "seconds"
  local total=0
  for i in "${!names[@]}"; do printf '%-28s %8d\n' "${names[$i]}" "${secs[$i]}"; total=$((total + secs[i])); done
  printf '%-28s %8d\n' "total" "$total"
}
step() {  # step NAME COMMAND...: runs it, records its wall time, stops the run when it fails
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name" >&2
  "$@"
  local rc=$?
  names+=("$name"); secs+=($((SECONDS - t0)))
  if ((rc != 0)); then table; echo "test.sh: step '$name' failed (exit $rc)" >&2; exit 1; fi
}
step "packages + DuckDB + web" env SPARSA_SETUP_BUILD=0 SPARSA_SETUP_TEST_PACKAGES=1 "$root/scripts/setup.sh"
step "build (Release, CUDA)" "$root/scripts/build.sh"
# Every test program runs under ASan + UBSan below; the Release build runs the ones labelled
# "release" (tests/CMakeLists.txt: the golden programs' full scope, the CUDA build's behaviour).
# SPARSA_RELIABILITY=0 runs them all here instead.
if [[ ${SPARSA_RELIABILITY:-1} != 0 ]]; then release_only=(-L release); else release_only=(); fi
step "ctest (Release)" ctest --test-dir "$root/build" --output-on-failure -j "$(nproc)" "${release_only[@]}" "$@"
step "browser test (e2e)" "$root/scripts/e2e.sh" "$root/build"
# The reliability checks (docs/reliability.md); SPARSA_RELIABILITY=0 skips them.
if [[ ${SPARSA_RELIABILITY:-1} != 0 ]]; then
  step "sanitizer build" "$root/scripts/sanitize.sh" --build-only
  step "sanitizer ctest" "$root/scripts/sanitize.sh" --test-only "$@"
  # Brief runs that keep CI under 25 minutes; longer ones: set the variables, or run the scripts.
  step "CLI option fuzzer" env SPARSA_CLI_FUZZ_SECONDS="${SPARSA_CLI_FUZZ_SECONDS:-60}" "$root/scripts/sanitize.sh" --cli-fuzz
  step "fuzzers" env SPARSA_FUZZ_SECONDS="${SPARSA_FUZZ_SECONDS:-20}" "$root/scripts/fuzz.sh"
fi
table
