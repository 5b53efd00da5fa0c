#!/usr/bin/env bash
# The sparse GEMV's GPU check: the CUDA tests, once under compute-sanitizer, and the benchmark.
#
# The device machine has the CUDA toolkit but not the library's C++ dependencies, so the
# programs are built here and carried:
#   scripts/gpu-check.sh pack [BUILD_DIR]   here: build test-sparse-gemv, test-cuda-ops and
#                                           bench-sparse-gemv (CUDA on, sm_90) and copy them, with
#                                           the shared libraries they need that are not CUDA's or
#                                           the C library's (xz), to .carry/gemv/
#   scripts/gpu-check.sh run                on the device (the `device` tool, carry
#                                           [".carry/gemv"]): logs, CSVs and tuning tables go
#                                           to $OUT/gemv-logs.tgz (or ./out)
# `run` steps: nvidia-smi; both test programs; bench-sparse-gemv for bf16 and fp16 at batch 1
# (and bf16 at batch 4), tuning first (tables kept in the logs as tune-*.json); test-sparse-gemv
# under compute-sanitizer memcheck and racecheck.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pack_dir="$root/.carry/gemv"

pack() {
  local build=${1:-$root/build-gemv}
  cmake -S "$root" -B "$build" -DSPARSA_CUDA=ON -DSPARSA_BUILD_BENCH=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCMAKE_EXE_LINKER_FLAGS=-Wl,--as-needed >/dev/null || exit 1
  cmake --build "$build" --target test-sparse-gemv test-cuda-ops bench-sparse-gemv -j "$(nproc)" || exit 1
  rm -rf "$pack_dir" && mkdir -p "$pack_dir/lib"
  local progs=("$build/tests/test-sparse-gemv" "$build/tests/test-cuda-ops" "$build/bench/bench-sparse-gemv")
  cp "${progs[@]}" "$pack_dir/"
  ldd "${progs[@]}" | awk '/=> \// {print $3}' | sort -u |
    grep -Ev '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*|libcuda|libcudart|libcublas[^/]*)\.so' |
    xargs -r cp -L -t "$pack_dir/lib/"
  tar -C "$pack_dir" -cf - lib | xz -9 -T0 >"$pack_dir/lib.txz" && rm -rf "$pack_dir/lib"  # libduckdb alone is 62 MB
  du -sh "$pack_dir"
}

run() {
  local out=${OUT:-$root/out} bin=$pack_dir
  local logs="$out/gemv-logs"  # packed into one file at the end: few files come back from $OUT
  mkdir -p "$logs"
  mkdir -p /tmp/gemv && tar -C /tmp/gemv -xJf "$bin/lib.txz"
  export LD_LIBRARY_PATH="/tmp/gemv/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  export PATH="/usr/local/cuda/bin:$PATH"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$logs/gpu.txt"
  date -u | tee -a "$logs/gpu.txt"
  local status=0 rc
  for t in test-sparse-gemv test-cuda-ops; do
    "$bin/$t" >"$logs/$t.log" 2>&1; rc=$?
    echo "$t: exit $rc; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$logs/$t.log" | tr '\n' ' ')"
    grep -E '^\[  FAILED  \]|Failure|error' "$logs/$t.log" | head -20
    [[ $rc == 0 ]] || status=1
  done
  for spec in "bf16 1" "f16 1" "bf16 4"; do
    set -- $spec
    timeout 300 "$bin/bench-sparse-gemv" --type "$1" --batch "$2" --tune-file "$logs/tune-$1.json" \
      --csv "$logs/bench-$1-b$2.csv" 2>"$logs/bench-$1-b$2.err" >"$logs/bench-$1-b$2.md" || status=1
    cat "$logs/bench-$1-b$2.md"; tail -2 "$logs/bench-$1-b$2.err"
  done
  # Under the sanitizer every kernel runs far slower: a few odd sizes, every config.
  for tool in memcheck racecheck; do
    timeout 200 compute-sanitizer --tool "$tool" --error-exitcode 9 "$bin/test-sparse-gemv" \
      --gtest_filter='*BF16_b1_in127_*:*BF16_b3_in4097_out264*:*F32_b2_in3_*:*BitIdentical*' \
      >"$logs/sanitizer-$tool.log" 2>&1; rc=$?
    echo "compute-sanitizer $tool: exit $rc; $(grep 'ERROR SUMMARY' "$logs/sanitizer-$tool.log" | tail -1)"
    [[ $rc == 0 ]] || status=1
  done
  tar -C "$out" -czf "$out/gemv-logs.tgz" gemv-logs && rm -rf "$logs"
  return $status
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: scripts/gpu-check.sh pack [BUILD_DIR] | run" >&2; exit 2 ;;
esac
