#!/usr/bin/env bash
# Builds the test suite with AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/ and runs it.
# Any sanitizer report fails the run (-fno-sanitize-recover; ASan aborts on the first error).
# The slow golden-fidelity programs check a reduced scope here (SPARSA_TEST_SCOPE=quick, see
# docs/reliability.md); every other test runs in full. Extra args go to ctest.
# --cli-fuzz runs the CLI option fuzzer (fuzz/cli_options.py) on the built CLI instead, for
# SPARSA_CLI_FUZZ_SECONDS (default 120) from seed SPARSA_CLI_FUZZ_SEED (default 1); extra args go to it.
# Usage: scripts/sanitize.sh [--build-only | --test-only | --cli-fuzz] [CTEST OR FUZZER ARGS...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-asan"
mode=all
case ${1:-} in --build-only) mode=build; shift ;; --test-only) mode=test; shift ;; --cli-fuzz) mode=cli-fuzz; shift ;; esac
# The Release build's optimisation (-O3) for the library, so the sanitizers check the code CI
# ships: at -O1 the compiler does not vectorise, and tests with tight floating-point tolerances
# see other roundings. -g1 (line tables) is enough for the reports' file:line and compiles ~40 %
# faster than -g; the test programs and the CLI front end (thin: the work is the library's) are
# compiled at -O0 (SPARSA_TEST_CXX_FLAGS, SPARSA_CLI_CXX_FLAGS), half the compile time of -O1 under
# the sanitizers. No CUDA: its tests skip without a GPU.
flags="-g1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
if [[ $mode == cli-fuzz ]]; then
  # The fuzzer sets the sanitizers' options itself (as below, plus an allocation limit).
  exec python3 "$root/fuzz/cli_options.py" --sparsa "$build/sparsa" --budget "${SPARSA_CLI_FUZZ_SECONDS:-120}" \
    --seed "${SPARSA_CLI_FUZZ_SEED:-1}" "$@"
fi
if [[ $mode == all || $mode == build ]]; then
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  [[ -f "$build/CMakeCache.txt" ]] && gen=()
  launcher=(); command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$root" CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
  cmake -S "$root" -B "$build" "${gen[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release -DSPARSA_CUDA=OFF \
    -DSPARSA_BUILD_BENCH=OFF -DSPARSA_UNITY=ON -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" -DSPARSA_TEST_CXX_FLAGS=-O0 -DSPARSA_CLI_CXX_FLAGS=-O0 \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  cmake --build "$build" -j "$(nproc)"
fi
[[ $mode == build ]] && exit 0
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export SPARSA_TEST_SCOPE=quick
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
