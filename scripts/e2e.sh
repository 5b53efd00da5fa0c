#!/usr/bin/env bash
# End-to-end test of the dashboard (`sparsa serve`) in a real browser: Debian's chromium driven
# by playwright-core (pinned, from npm; it downloads no browser). Builds a small study, serves
# it on a free loopback port, runs tests/e2e/dashboard.mjs and leaves screenshots in
# BUILD/e2e-screenshots/. Installs chromium with apt-get when absent (as scripts/setup.sh does).
# Usage: scripts/e2e.sh [BUILD_DIR]   (default: build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
PW_SPEC="playwright-core@1.61.1"  # the last release that runs on Debian 12's Node 18
PW_SHA="3740bba3a3e93b4c7bd7c0f6e3c0e5f8cdce498bef13511e4d534cc99a8ce198"
pw="$root/third_party/playwright-core"
start=$(date +%s)

if [[ ! -x /usr/bin/chromium ]] || ! command -v node >/dev/null; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  missing=(chromium); command -v node >/dev/null || missing+=(nodejs)
  echo "e2e: installing ${missing[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ ! -f "$pw/.pinned-1.61.1" ]]; then
  tmp=$(mktemp -d)
  tgz=$(cd "$tmp" && npm pack --silent "$PW_SPEC" | tail -n 1)
  echo "$PW_SHA  $tmp/$tgz" | sha256sum -c --quiet - || { echo "e2e: checksum mismatch for $PW_SPEC" >&2; exit 1; }
  rm -rf "$pw" && mkdir -p "$pw"
  tar -xzf "$tmp/$tgz" -C "$pw" --strip-components=1
  rm -rf "$tmp"
  touch "$pw/.pinned-1.61.1"
fi
echo "e2e: chromium and playwright-core ready after $(( $(date +%s) - start )) s" >&2

work=$(mktemp -d)
server=""
cleanup() { [[ -n "$server" ]] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$build/sparsa" study --out "$work/study" --methods magnitude,wanda,sparsegpt --targets 0.5,2:4 --sweep none \
  --nsamples 8 --eval-limit 4 --act-sparsities 0.25,0.5,0.7 --bitset-windows 2 --ks 4,8 --kmeans-runs 2 \
  --tsne-iterations 500 --no-figures >"$work/study.log" 2>&1 || { cat "$work/study.log" >&2; exit 1; }
echo "e2e: study built after $(( $(date +%s) - start )) s" >&2

"$build/sparsa" serve --db "$work/study/study.duckdb" --port 0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
url=""
for _ in $(seq 100); do
  url=$(grep -o 'http://[^ ]*' "$work/serve.out" || true)
  [[ -n "$url" ]] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$url" ]] || { echo "e2e: sparsa serve printed no URL" >&2; exit 1; }
shots="$build/e2e-screenshots"
rm -rf "$shots" && mkdir -p "$shots"
PLAYWRIGHT_CORE="$pw" node "$root/tests/e2e/dashboard.mjs" "$url" "$shots"
echo "e2e: passed in $(( $(date +%s) - start )) s; screenshots in $shots" >&2
