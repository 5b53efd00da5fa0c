#!/usr/bin/env bash
# Fetches the pinned prebuilt DuckDB library and its C header from the npm registry into
# third_party/duckdb/ (git-ignored). Checksums pin the exact bytes; nothing is built from source.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/third_party/duckdb"
LIB_PKG="@duckdb/node-bindings-linux-x64@1.4.4-r.4"
LIB_SHA="732fac4dc6b8f198870b9c4bb6ddf13544466daca00ad28ba2f1d80de5d7aa4b"
HDR_PKG="duckdb@1.4.4"
HDR_SHA="5bb967dcbcd517670ba5f169f238fb9d6787e53752c60ebe24386169d76941ed"

if [[ -f "$dest/libduckdb.so" && -f "$dest/include/duckdb.h" && -f "$dest/.pinned-1.4.4-r.4" ]]; then
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-duckdb: npm is required (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$LIB_PKG" "$HDR_PKG" >/dev/null)
check() { echo "$2  $1" | sha256sum -c --quiet - || { echo "fetch-duckdb: checksum mismatch for $1" >&2; exit 1; }; }
check "$tmp/duckdb-node-bindings-linux-x64-1.4.4-r.4.tgz" "$LIB_SHA"
check "$tmp/duckdb-1.4.4.tgz" "$HDR_SHA"
mkdir -p "$dest/include"
tar -xzf "$tmp/duckdb-node-bindings-linux-x64-1.4.4-r.4.tgz" -C "$tmp" package/libduckdb.so package/LICENSE
tar -xzf "$tmp/duckdb-1.4.4.tgz" -C "$tmp" package/src/duckdb/src/include/duckdb.h
mv "$tmp/package/libduckdb.so" "$dest/libduckdb.so"
mv "$tmp/package/LICENSE" "$dest/LICENSE"
mv "$tmp/package/src/duckdb/src/include/duckdb.h" "$dest/include/duckdb.h"
touch "$dest/.pinned-1.4.4-r.4"
echo "fetch-duckdb: DuckDB 1.4.4 in $dest"
