#!/usr/bin/env bash
# Sets up (idempotent: packages, DuckDB, incremental build) and runs the whole test suite,
# then the dashboard's browser test (scripts/e2e.sh).
# Tests that need ../shared (the goldens) read it beside the repo. Extra args go to ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
ctest --test-dir "$root/build" --output-on-failure -j "$(nproc)" "$@"
"$root/scripts/e2e.sh" "$root/build"  # the dashboard in a real browser
