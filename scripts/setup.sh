#!/usr/bin/env bash
# One-time set-up on a Debian 12 machine: system packages, the pinned DuckDB from npm,
# then a Release build in build/ (SPARSA_SETUP_BUILD=0 stops before it). Safe to run again
# (everything is skipped when present).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libopenblas-openmp-dev libpcre2-dev libutf8proc-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev libzip-dev libcairo2-dev fonts-dejavu-core libcpp-httplib-dev ccache
)
# What the test suite needs beyond the build (scripts/test.sh asks for them here, in the same
# apt-get run: the browser test's chromium, the fuzzers' clang).
[[ ${SPARSA_SETUP_TEST_PACKAGES:-0} == 1 ]] && PACKAGES+=(chromium clang-14 libclang-rt-14-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches DuckDB; machines with NodeSource's nodejs already have it (and conflict with Debian's npm).
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
"$root/scripts/fetch-duckdb.sh"
"$root/scripts/fetch-web.sh"
[[ ${SPARSA_SETUP_BUILD:-1} == 0 ]] || "$root/scripts/build.sh"
