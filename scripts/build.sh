#!/usr/bin/env bash
# Configures and builds sparsa in build/ (Release). Extra arguments go to cmake's configure step.
# Unity builds of the library (SPARSA_UNITY: a clean build in about two thirds of the time). With
# ccache installed, compilations are cached (keyed relative to the checkout, so clones share).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
[[ -f "$root/build/CMakeCache.txt" ]] && gen=()
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache
  -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
export CCACHE_BASEDIR="$root" CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
cmake -S "$root" -B "$root/build" "${gen[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release -DSPARSA_UNITY=ON "$@" >/dev/null
cmake --build "$root/build" -j "$(nproc)"
