#!/usr/bin/env bash
# Configures and builds sparsa in build/ (Release). Extra arguments go to cmake's configure step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
[[ -f "$root/build/CMakeCache.txt" ]] && gen=()
cmake -S "$root" -B "$root/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$root/build" -j "$(nproc)"
