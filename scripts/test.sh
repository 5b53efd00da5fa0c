#!/usr/bin/env bash
# Sets up (idempotent: packages, DuckDB, incremental build) and runs the whole test suite, the
# dashboard's browser test, then the same suite under ASan + UBSan and the parser fuzzers.
# Tests that need ../shared (the goldens) read it beside the repo. Extra args go to ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
ctest --test-dir "$root/build" --output-on-failure -j "$(nproc)" "$@"
"$root/scripts/e2e.sh" "$root/build"  # the dashboard in a real browser
# The reliability checks (docs/reliability.md); SPARSA_RELIABILITY=0 skips them.
if [[ ${SPARSA_RELIABILITY:-1} != 0 ]]; then "$root/scripts/sanitize.sh"; "$root/scripts/fuzz.sh"; fi
