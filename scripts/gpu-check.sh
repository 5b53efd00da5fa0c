#!/usr/bin/env bash
# The GPU check: every CUDA test program (test-gpu-ops first: every op launcher against its CPU
# reference), compute-sanitizer on the kernels' tests, the GPU pruning and sparse GEMV benchmarks,
# and `sparsa prune/eval --device cuda` end to end.
#
# The device machine has the CUDA toolkit but not the library's C++ dependencies, so the
# programs are built here and carried:
#   scripts/gpu-check.sh pack [BUILD_DIR]   here: build the CUDA tests, the GPU benchmarks and the
#                                           CLI (CUDA on, sm_90), strip them, and pack them with the
#                                           shared libraries they need that are not CUDA's or the C
#                                           library's, and the goldens the tests read, into
#                                           .carry/gpu/gpu.txz (git-ignored); PACK_GOLDENS=0 leaves the
#                                           goldens out (test-gpu-model needs them) when the tree and the
#                                           pack would pass the device's 64 MiB, and PACK_PROGRAMS="tests/a
#                                           bench/b" packs only those programs
#   scripts/gpu-check.sh run [STEPS]        on the device (the `device` tool, carry [".carry/gpu"]):
#                                           STEPS is a comma list of tests, sanitizer, prune-bench,
#                                           big-model, multi-gpu, gemv-bench, gemv-fused, gemv-layout,
#                                           decode-bench, resume, cli (default: all but multi-gpu, which
#                                           wants nvidia-h200-x2 or -x4, and gemv-fused, the fused q/k/v
#                                           and gate/up GEMV bench). Logs go to $OUT/gpu-logs.tgz (or ./out).
#                                           GPU_TESTS="test-a test-b" narrows the tests step.
# The binaries have this checkout's path (SPARSA_SOURCE_DIR) built in; `run` links it, and
# ../shared, to the device's copy when they are absent there.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pack_dir="$root/.carry/gpu"
PROGRAMS=(tests/test-gpu-ops tests/test-sparse-gemv tests/test-cuda-ops tests/test-gpu-model tests/test-gpu-decode
  tests/test-sparse-gemv-weights tests/test-sparse-gemv-blocks bench/bench-sparse-gemv bench/bench-gpu-prune
  bench/bench-decode bench/bench-sparse-gemv-weights bench/bench-coactivation-layout sparsa)
GOLDENS=(README.md tokens.safetensors wanda_u50.safetensors wanda_2-4.safetensors sparsegpt_u50.safetensors
  sparsegpt_2-4.safetensors)

pack() {
  local build=${1:-$root/build-gpu}
  cmake -S "$root" -B "$build" -G Ninja -DSPARSA_CUDA=ON -DSPARSA_BUILD_BENCH=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCMAKE_EXE_LINKER_FLAGS=-Wl,--as-needed >/dev/null || exit 1
  local targets=()
  [[ -z ${PACK_PROGRAMS:-} ]] || read -ra PROGRAMS <<<"$PACK_PROGRAMS"
  for p in "${PROGRAMS[@]}"; do targets+=("$(basename "$p")"); done
  cmake --build "$build" --target "${targets[@]}" -j "$(nproc)" || exit 1
  local stage; stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/lib" "$stage/shared/golden"
  for p in "${PROGRAMS[@]}"; do cp "$build/$p" "$stage/bin/"; done
  strip -s "$stage"/bin/*
  ldd "$stage"/bin/* | awk '/=> \// {print $3}' | sort -u |
    grep -Ev '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*|libcuda|libcudart|libcublas[^/]*|libcusolver[^/]*|libcusparse[^/]*|libnvJitLink[^/]*)\.so' |
    xargs -r cp -L -t "$stage/lib/"
  chmod u+w "$stage"/lib/* && strip --strip-unneeded "$stage"/lib/*  # the tree and the pack share 64 MiB
  [[ ${PACK_GOLDENS:-1} == 0 ]] || for g in "${GOLDENS[@]}"; do cp "$root/../shared/golden/$g" "$stage/shared/golden/"; done
  rm -rf "$pack_dir" && mkdir -p "$pack_dir"
  tar -C "$stage" -cf - bin lib shared | xz -6 -T0 >"$pack_dir/gpu.txz"
  rm -rf "$stage"
  du -sh "$pack_dir"
}

run() {
  local steps=",${1:-tests,sanitizer,prune-bench,big-model,gemv-bench,gemv-layout,decode-bench,resume,cli},"
  local out=${OUT:-$root/out} logs status=0 rc
  logs="$out/gpu-logs"  # packed into one file at the end: few files come back from $OUT
  mkdir -p "$logs" /tmp/gpu
  tar -C /tmp/gpu -xJf "$pack_dir/gpu.txz" || exit 1
  local bin=/tmp/gpu/bin
  export LD_LIBRARY_PATH="/tmp/gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  export PATH="/usr/local/cuda/bin:$PATH"
  export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off on shared hosts (the device README)
  if ! ldconfig -p | grep -q 'libnccl.so.2 '; then  # e.g. only PyTorch's copy (nvidia-nccl wheel)
    SPARSA_NCCL_LIBRARY=$(find / -name 'libnccl.so.2' -not -path '/proc/*' 2>/dev/null | head -1)
    export SPARSA_NCCL_LIBRARY
    echo "NCCL: ${SPARSA_NCCL_LIBRARY:-not found}"
  fi
  local built_root; built_root=$(strings "$bin/sparsa" | grep -m1 -E '^/.*/src/[a-z_]+/[a-z_]+\.cpp$' | sed -E 's|/src/[a-z_]+/[a-z_]+\.cpp$||')
  if [[ -n "$built_root" && ! -e "$built_root" ]]; then mkdir -p "$(dirname "$built_root")" && ln -s "$root" "$built_root"; fi
  [[ -e "$root/../shared" ]] || ln -s /tmp/gpu/shared "$root/../shared"
  [[ -n "$built_root" && ! -e "$built_root/../shared" ]] && ln -s /tmp/gpu/shared "$built_root/../shared"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$logs/gpu.txt"
  date -u | tee -a "$logs/gpu.txt"
  if [[ $steps == *,tests,* ]]; then
    for t in ${GPU_TESTS:-test-gpu-ops test-cuda-ops test-sparse-gemv test-sparse-gemv-weights test-sparse-gemv-blocks test-gpu-model \
      test-gpu-decode}; do
      "$bin/$t" >"$logs/$t.log" 2>&1; rc=$?
      echo "$t: exit $rc; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$logs/$t.log" | tr '\n' ' ')"
      grep -E '^\[  FAILED  \]|Failure|error|perplexity:|agreement|ppl |decode:|synthetic tiny:' "$logs/$t.log" | head -40
      [[ $rc == 0 ]] || status=1
    done
  fi
  if [[ $steps == *,sanitizer,* ]]; then  # every kernel runs far slower under it: small cases only
    for tool in memcheck racecheck; do
      timeout 240 compute-sanitizer --tool "$tool" --error-exitcode 9 "$bin/test-gpu-ops" \
        >"$logs/sanitizer-ops-$tool.log" 2>&1; rc=$?  # every op launcher once, on small inputs
      echo "compute-sanitizer $tool test-gpu-ops: exit $rc; $(grep 'ERROR SUMMARY' "$logs/sanitizer-ops-$tool.log" | tail -1)"
      [[ $rc == 0 ]] || status=1
      timeout 240 compute-sanitizer --tool "$tool" --error-exitcode 9 "$bin/test-gpu-model" \
        --gtest_filter='GpuHessian.*:GpuWanda.*:GpuSparseGpt.*:GpuPerplexity.Refuses*' >"$logs/sanitizer-gpu-$tool.log" 2>&1; rc=$?
      echo "compute-sanitizer $tool test-gpu-model: exit $rc; $(grep 'ERROR SUMMARY' "$logs/sanitizer-gpu-$tool.log" | tail -1)"
      [[ $rc == 0 ]] || status=1
      local decode_filter='GpuDecode.GraphReplay*:GpuDecode.Cublas*:GpuDecode.Refuses*'
      # racecheck takes 220 s over the graph replay test on an H100; memcheck covers it
      [[ $tool == racecheck ]] && decode_filter='GpuDecode.Cublas*:GpuDecode.Refuses*'
      timeout 240 compute-sanitizer --tool "$tool" --error-exitcode 9 "$bin/test-gpu-decode" \
        --gtest_filter="$decode_filter" >"$logs/sanitizer-decode-$tool.log" 2>&1; rc=$?
      echo "compute-sanitizer $tool test-gpu-decode: exit $rc; $(grep 'ERROR SUMMARY' "$logs/sanitizer-decode-$tool.log" | tail -1)"
      [[ $rc == 0 ]] || status=1
    done
  fi
  if [[ $steps == *,prune-bench,* ]]; then
    timeout 420 "$bin/bench-gpu-prune" 2>&1 | tee "$logs/bench-gpu-prune.md"; rc=${PIPESTATUS[0]}
    [[ $rc == 0 ]] || status=1
  fi
  if [[ $steps == *,big-model,* ]]; then  # larger than the GPU: a few 70B-shaped blocks, one resident at a time
    timeout 300 "$bin/bench-gpu-prune" --skip-matrix --preset 70b --layers 4 2>&1 | tee "$logs/bench-gpu-prune-70b.md"
    rc=${PIPESTATUS[0]}; [[ $rc == 0 ]] || status=1
  fi
  if [[ $steps == *,multi-gpu,* ]]; then  # scaling over the GPUs of a multi-GPU kind (nvidia-h200-x2 / -x4)
    local count; count=$(nvidia-smi --list-gpus | wc -l)
    for g in 2 4; do
      ((g <= count)) || continue
      timeout 300 "$bin/bench-gpu-prune" --skip-matrix --gpus "$g" 2>&1 | tee "$logs/bench-gpu-prune-${g}gpu.md"
      rc=${PIPESTATUS[0]}; [[ $rc == 0 ]] || status=1
    done
  fi
  if [[ $steps == *,gemv-bench,* ]]; then
    for spec in "bf16 1" "f16 1"; do
      set -- $spec
      timeout 300 "$bin/bench-sparse-gemv" --type "$1" --batch "$2" --tune-file "$logs/tune-$1.json" \
        --csv "$logs/bench-$1-b$2.csv" 2>"$logs/bench-$1-b$2.err" >"$logs/bench-$1-b$2.md" || status=1
      cat "$logs/bench-$1-b$2.md"
    done
  fi
  if [[ $steps == *,gemv-fused,* ]]; then  # q/k/v and gate/up: fused vs separate launches vs cuBLAS, launch floor
    timeout 300 "$bin/bench-sparse-gemv" --fused all --type bf16 --tune-file "$logs/tune-fused-bf16.json" \
      --csv "$logs/bench-fused-bf16.csv" 2>"$logs/bench-fused-bf16.err" >"$logs/bench-fused-bf16.md" || status=1
    cat "$logs/bench-fused-bf16.md"
  fi
  if [[ $steps == *,decode-bench,* ]]; then  # end-to-end decode of a synthetic 7B: dense vs activation sparsity
    timeout 300 "$bin/bench-decode" --tune-file "$logs/tune-decode.json" 2>&1 | tee "$logs/bench-decode.md"
    rc=${PIPESTATUS[0]}; [[ $rc == 0 ]] || status=1
  fi
  if [[ $steps == *,gemv-layout,* ]]; then  # 2:4 × activation sparsity; co-activation layout + block skipping
    for t in test-sparse-gemv-weights test-sparse-gemv-blocks; do  # small cases, every config
      timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/$t" \
        --gtest_filter='*_in1_*:*_in3_*:*_in4_*:*_in12_*:*_in127_*:*Runs.*' >"$logs/sanitizer-$t.log" 2>&1; rc=$?
      echo "compute-sanitizer memcheck $t: exit $rc; $(grep 'ERROR SUMMARY' "$logs/sanitizer-$t.log" | tail -1)"
      [[ $rc == 0 ]] || status=1
    done
    timeout 150 "$bin/bench-sparse-gemv-weights" --type bf16 --tune-file "$logs/tune-bf16.json" \
      --csv "$logs/bench-weights-bf16.csv" 2>"$logs/bench-weights-bf16.err" | tee "$logs/bench-weights-bf16.md"
    rc=${PIPESTATUS[0]}; [[ $rc == 0 ]] || status=1
    timeout 120 "$bin/bench-coactivation-layout" --windows 32 --csv "$logs/bench-layout.csv" \
      2>"$logs/bench-layout.err" | tee "$logs/bench-layout.md"
    rc=${PIPESTATUS[0]}; [[ $rc == 0 ]] || status=1
  fi
  if [[ $steps == *,resume,* ]]; then  # prune --device cuda killed at several points and rerun: same bytes
    local work=/tmp/gpu-resume args
    rm -rf "$work" && mkdir -p "$work"
    args=(prune --device cuda --method sparsegpt --sparsity 0.5 --calib "$root/data/calib-tokens.safetensors"
      --calib-key calib --nsamples 32 --dtype float32)
    "$bin/sparsa" "${args[@]}" --out "$work/whole" >/dev/null 2>"$logs/resume-whole.err" || status=1
    for delay in 0.35 0.45 0.5 0.55 0.6 0.65 0.7 0.8; do  # the whole run takes under a second on an H200
      timeout -s KILL "$delay" "$bin/sparsa" "${args[@]}" --out "$work/run" >/dev/null 2>&1
      if [[ -e "$work/run/summary.json" ]]; then
        echo "resume: the run killed at ${delay} s had finished"; rm -rf "$work/run"; continue
      fi
      local left; left=$(ls "$work/run.partial" 2>/dev/null | grep -c '^block-[0-9]*\.safetensors$')
      "$bin/sparsa" "${args[@]}" --out "$work/run" >/dev/null 2>"$logs/resume-$delay.err"; rc=$?
      local restored; restored=$(grep -o '"restored_blocks": [0-9]*' "$work/run/summary.json" 2>/dev/null)
      if [[ $rc == 0 ]] && cmp -s "$work/whole/masks.safetensors" "$work/run/masks.safetensors" &&
        cmp -s "$work/whole/model.safetensors" "$work/run/model.safetensors"; then
        echo "resume after a kill at ${delay} s: ${left} block file(s) left, ${restored}; masks and weights identical"
      else
        echo "resume after a kill at ${delay} s: FAILED (exit $rc, ${left} block file(s) left)"; status=1
      fi
      rm -rf "$work/run" "$work/run.partial"
    done
  fi
  if [[ $steps == *,cli,* ]]; then  # the CLI end to end on a synthetic 7B checkpoint on disk
    local work=/tmp/gpu-cli
    rm -rf "$work" && mkdir -p "$work"
    /usr/bin/time -v "$bin/sparsa" synth --preset 7b --out "$work/synth-7b" 2>"$logs/cli-synth.time" | tee -a "$logs/cli.txt"
    for method in wanda sparsegpt; do
      /usr/bin/time -v "$bin/sparsa" prune --device cuda --gpu-precision bf16 --model "$work/synth-7b" --method "$method" \
        --sparsity 0.5 --calib "$work/synth-7b/calib-tokens.safetensors" --out "$work/pruned-$method" --json \
        2>"$logs/cli-$method.time" | tee -a "$logs/cli.txt"; rc=${PIPESTATUS[0]}
      grep -E 'Elapsed|Maximum resident' "$logs/cli-$method.time"
      [[ $rc == 0 ]] || status=1
      cp "$work/pruned-$method/summary.json" "$logs/summary-$method.json" 2>/dev/null
      rm -rf "$work/pruned-$method"
    done
    "$bin/sparsa" eval --device cuda --json | tee -a "$logs/cli.txt"
    "$bin/sparsa" eval --device cuda --gpu-precision bf16 --json | tee -a "$logs/cli.txt"
    "$bin/sparsa" eval --json | tee -a "$logs/cli.txt"
  fi
  tar -C "$out" -czf "$out/gpu-logs.tgz" gpu-logs && rm -rf "$logs"
  return $status
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: scripts/gpu-check.sh pack [BUILD_DIR] | run [STEPS]" >&2; exit 2 ;;
esac
