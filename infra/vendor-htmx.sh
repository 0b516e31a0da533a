#!/usr/bin/env bash
# Vendor htmx into the console's static files from its npm package, at a pinned version:
# `npm pack htmx.org@VERSION`, copy dist/htmx.min.js, record version, sha256 and the tarball's
# integrity in backend/console/static/VENDORED.json (tests/unit/test_console_vendored.py checks it).
# Usage: bash infra/vendor-htmx.sh [VERSION]   (default: the version recorded now, or 2.0.11)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATIC="$ROOT/backend/console/static"
VERSION="${1:-2.0.11}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent --json "htmx.org@$VERSION" > pack.json
tarball="$(python3 -c 'import json; print(json.load(open("pack.json"))[0]["filename"])')"
integrity="$(python3 -c 'import json; print(json.load(open("pack.json"))[0]["integrity"])')"
tar -xzf "$tarball"
cp package/dist/htmx.min.js "$STATIC/htmx.min.js"
sha="$(sha256sum "$STATIC/htmx.min.js" | cut -d' ' -f1)"
python3 - "$STATIC/VENDORED.json" "$VERSION" "$sha" "$integrity" <<'PY'
import json, sys
path, version, sha, integrity = sys.argv[1:]
record = {
    "htmx.min.js": {
        "package": "htmx.org",
        "version": version,
        "from": "dist/htmx.min.js",
        "sha256": sha,
        "npm_integrity": integrity,
        "license": "0BSD",
    }
}
with open(path, "w") as out:
    json.dump(record, out, indent=2)
    out.write("\n")
PY
echo "vendored htmx.org@$VERSION: sha256 $sha"
