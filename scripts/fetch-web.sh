#!/usr/bin/env bash
# Fetches the pinned chart library of the dashboard (`sparsa serve`) from the npm registry into
# third_party/web/ (git-ignored): vega, vega-lite and vega-embed, their prebuilt minified
# browser bundles and licences. The build embeds them into the binary (no CDN at run time).
# Checksums pin the exact bytes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/third_party/web"
STAMP="$dest/.pinned-vega-6.4.0-lite-6.5.0-embed-7.3.0"
# package@version  tarball sha256  bundle inside the tarball
PKGS=(
  "vega@6.4.0 3521fb6ff68a94a40323954f0ba4484ba4014b157bfd37f89a3b063082320c42 build/vega.min.js"
  "vega-lite@6.5.0 811230a6bfd2cdbfc359d0c38f624a90df86657b7f251b67be88bcc4eee32b7f build/vega-lite.min.js"
  "vega-embed@7.3.0 d9a958ced3240f0418df7d5e12e97dba6e63cecda15b8403e47a0db7eb6ea859 build/vega-embed.min.js"
)
[[ -f "$STAMP" ]] && exit 0
command -v npm >/dev/null || { echo "fetch-web: npm is required (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest"
for entry in "${PKGS[@]}"; do
  read -r spec sha bundle <<<"$entry"
  name=${spec%@*}
  tgz=$(cd "$tmp" && npm pack --silent "$spec" | tail -n 1)
  echo "$sha  $tmp/$tgz" | sha256sum -c --quiet - || { echo "fetch-web: checksum mismatch for $spec" >&2; exit 1; }
  mkdir -p "$tmp/$name"
  tar -xzf "$tmp/$tgz" -C "$tmp/$name" "package/$bundle" package/LICENSE
  mv "$tmp/$name/package/$bundle" "$dest/$(basename "$bundle")"
  mv "$tmp/$name/package/LICENSE" "$dest/LICENSE.$name"
done
touch "$STAMP"
echo "fetch-web: vega 6.4.0, vega-lite 6.5.0, vega-embed 7.3.0 in $dest"
