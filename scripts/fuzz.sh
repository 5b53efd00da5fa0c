#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang 14 (ASan + UBSan) in build-fuzz/ and runs each
# (one per core at a time) for SPARSA_FUZZ_SECONDS (default 30) from seed corpora: the small seeds in fuzz/seeds/ and, at
# run time, real files from tests/data and ../shared. Fails on any crash, leak, timeout, memory
# blow-up or sanitizer report; prints the executions per target. See docs/reliability.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-fuzz"
seconds=${SPARSA_FUZZ_SECONDS:-30}
shared="$root/../shared"

missing=()
for p in clang-14 libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "fuzz: installing ${missing[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
[[ -f "$build/CMakeCache.txt" ]] && gen=()
cmake -S "$root/fuzz" -B "$build" "${gen[@]}" -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build "$build" -j "$(nproc)"

# Seeds: committed ones, plus real files (copied, so a fuzzer never writes beside them).
corpus="$build/corpus"
rm -rf "$corpus"
seed() {  # seed TARGET FILE... (files that do not exist are skipped)
  mkdir -p "$corpus/$1"
  local t=$1; shift
  for f in "$@"; do [[ -f $f ]] && cp "$f" "$corpus/$t/" || true; done
}
for t in safetensors sharded-index hf-config tokenizer-json llama2c torch-pt thresholds; do
  seed "$t" "$root"/fuzz/seeds/"$t"/*
done
# Files that share a name (every model's config.json) are named after their model's folder.
for f in "$root"/models/*/config.json "$shared"/models/*/config.json; do
  [[ -f $f ]] && cp "$f" "$corpus/hf-config/$(basename "$(dirname "$f")").json"
done
for f in "$shared"/models/*/model.safetensors.index.json; do
  [[ -f $f ]] && cp "$f" "$corpus/sharded-index/$(basename "$(dirname "$f")").json"
done
seed torch-pt "$root"/tests/data/pt/*.pt
# The first 4 KiB of real safetensors files: their headers (the data is cut off).
for f in "$root"/data/*.safetensors "$shared"/golden/tokens.safetensors "$shared"/golden/wanda_2-4.safetensors; do
  [[ -f $f ]] && head -c 4096 "$f" >"$corpus/safetensors/head-$(basename "$f")"
done

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# The targets run side by side, as many at a time as there are cores.
fuzz_one() {  # fuzz_one TARGET: runs it, prints one line; non-zero on a finding
  local t=$1 log="$build/fuzz-$1.log"
  # -rss_limit_mb / -malloc_limit_mb: a parser may not allocate what a header merely claims.
  if "$build/fuzz-$t" "$corpus/$t" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$build/crash-$t-" \
      >"$log" 2>&1; then
    echo "fuzz-$t: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') executions in ${seconds} s, clean"
  else
    echo "fuzz-$t: FAILED (see $log; the input is $build/crash-$t-*)" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}
status=0
pids=()
for t in safetensors sharded-index hf-config tokenizer-json llama2c torch-pt thresholds; do
  fuzz_one "$t" &
  pids+=($!)
  if ((${#pids[@]} >= $(nproc))); then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
