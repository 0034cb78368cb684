#!/usr/bin/env bash
# Refresh the GraphiQL playground's vendored assets in graph/static/graphiql/.
#
# The playground must work with no network, so every JS/CSS file it loads is served by the
# app from graph/static/graphiql/ (mounted at /static/graphiql). The versions below are the
# ones Strawberry's own GraphiQL page (strawberry/static/graphiql.html) loads from a CDN;
# bump them together with Strawberry when its page changes.
#
# For each pinned package this script runs `npm pack` into a temporary folder (never into
# the repository), extracts the tarball, copies the needed files and the package's licence
# into graph/static/graphiql/, and rewrites VERSIONS.txt. The hand-written files there
# (playground.js, playground.css, favicon.svg) are left alone.
#
# usage: scripts/vendor_graphiql.sh            refresh the files
#        scripts/vendor_graphiql.sh --check    rebuild into a temp folder and compare with
#                                              the committed files (exit 1 on any difference)
# needs: bash, node + npm (registry access), tar, openssl (for the sha384 column), cmp
set -euo pipefail

# ---- pinned versions (same as Strawberry's graphiql.html) ---------------------------------
REACT_VERSION=18.2.0
REACT_DOM_VERSION=18.2.0
JS_COOKIE_VERSION=3.0.5
GRAPHIQL_VERSION=3.8.3
PLUGIN_EXPLORER_VERSION=1.0.2
# bundled inside @graphiql/plugin-explorer's UMD build (its dependency "graphiql-explorer":
# "^0.9.0"); packed only for its licence file
GRAPHIQL_EXPLORER_VERSION=0.9.0
# --------------------------------------------------------------------------------------------

# package spec | "src-in-package:dest-name ..." | licence file name in the package | dest licence
# An empty licence source means the tarball ships none (see licence_fallback below).
PACKAGES=(
  "react@${REACT_VERSION}|umd/react.production.min.js:react.production.min.js|LICENSE|LICENSE.react"
  "react-dom@${REACT_DOM_VERSION}|umd/react-dom.production.min.js:react-dom.production.min.js|LICENSE|LICENSE.react-dom"
  "js-cookie@${JS_COOKIE_VERSION}|dist/js.cookie.min.js:js.cookie.min.js|LICENSE|LICENSE.js-cookie"
  "graphiql@${GRAPHIQL_VERSION}|graphiql.min.js:graphiql.min.js graphiql.min.css:graphiql.min.css|LICENSE|LICENSE.graphiql"
  "@graphiql/plugin-explorer@${PLUGIN_EXPLORER_VERSION}|dist/index.umd.js:plugin-explorer.umd.js dist/style.css:plugin-explorer.css||LICENSE.plugin-explorer"
  "graphiql-explorer@${GRAPHIQL_EXPLORER_VERSION}||LICENSE|LICENSE.graphiql-explorer"
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/graph/static/graphiql"

CHECK=0
case "${1:-}" in
  "") ;;
  --check) CHECK=1 ;;
  -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "unknown option: $1" >&2; exit 2 ;;
esac

for tool in node npm tar openssl cmp; do
  command -v "$tool" >/dev/null 2>&1 || { echo "vendor_graphiql: '$tool' not found" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/vendor-graphiql.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
OUT="$WORK/out"
mkdir -p "$OUT"

sha384() { openssl dgst -sha384 -binary "$1" | openssl base64 -A; }

# @graphiql/plugin-explorer's tarball has no LICENSE file; its package.json says "MIT" and
# it lives in the graphql/graphiql monorepo, whose MIT licence the graphiql package ships.
licence_fallback() { # $1 = package spec, $2 = its extracted package dir, $3 = dest file
  local declared
  declared="$(node -e 'process.stdout.write(String(require(process.argv[1]).license||""))' "$2/package.json" 2>/dev/null || true)"
  [ "$declared" = "MIT" ] || { echo "vendor_graphiql: $1 ships no LICENSE and declares '$declared'" >&2; exit 1; }
  local graphiql_licence="$WORK/pkg/graphiql@${GRAPHIQL_VERSION}/package/LICENSE"
  [ -f "$graphiql_licence" ] || { echo "vendor_graphiql: graphiql must be packed before $1" >&2; exit 1; }
  {
    echo "$1 declares \"license\": \"MIT\" in its package.json, but its npm tarball ships no"
    echo "LICENSE file. It is developed in the graphql/graphiql monorepo"
    echo "(packages/graphiql-plugin-explorer), whose MIT licence (as shipped in the graphiql"
    echo "package) follows. Its UMD build bundles graphiql-explorer; see LICENSE.graphiql-explorer."
    echo
    cat "$graphiql_licence"
  } > "$3"
}

{
  echo "# GraphiQL playground assets, vendored from npm by scripts/vendor_graphiql.sh"
  echo "# (the same packages and versions Strawberry's graphiql.html loads from a CDN)."
  echo "# Served by the app at /static/graphiql/<file>. Do not edit these files by hand."
  echo "# columns: package@version  package-path -> file  sha384 (base64, as for an integrity attribute)"
  echo
} > "$OUT/VERSIONS.txt"

mkdir -p "$WORK/pkg"
for entry in "${PACKAGES[@]}"; do
  IFS='|' read -r spec files licence_src licence_dest <<<"$entry"
  pkgdir="$WORK/pkg/$spec"
  mkdir -p "$pkgdir"
  echo "vendor_graphiql: npm pack $spec" >&2
  tgz="$(cd "$pkgdir" && npm pack --silent --ignore-scripts "$spec" 2>/dev/null | tail -n 1)"
  [ -n "$tgz" ] && [ -f "$pkgdir/$tgz" ] || { echo "vendor_graphiql: npm pack $spec failed" >&2; exit 1; }
  tar -xzf "$pkgdir/$tgz" -C "$pkgdir"
  # make sure npm gave us exactly the pinned version
  got="$(node -e 'const p=require(process.argv[1]);process.stdout.write(p.name+"@"+p.version)' "$pkgdir/package/package.json")"
  [ "$got" = "$spec" ] || { echo "vendor_graphiql: asked for $spec, got $got" >&2; exit 1; }

  echo "$spec" >> "$OUT/VERSIONS.txt"
  for pair in $files; do
    src="${pair%%:*}"; dst="${pair#*:}"
    [ -f "$pkgdir/package/$src" ] || { echo "vendor_graphiql: $spec has no $src" >&2; exit 1; }
    cp "$pkgdir/package/$src" "$OUT/$dst"
    printf '  %s -> %s  sha384-%s\n' "$src" "$dst" "$(sha384 "$OUT/$dst")" >> "$OUT/VERSIONS.txt"
  done
  if [ -n "$licence_src" ]; then
    [ -f "$pkgdir/package/$licence_src" ] || { echo "vendor_graphiql: $spec has no $licence_src" >&2; exit 1; }
    cp "$pkgdir/package/$licence_src" "$OUT/$licence_dest"
    printf '  %s -> %s\n' "$licence_src" "$licence_dest" >> "$OUT/VERSIONS.txt"
  else
    licence_fallback "$spec" "$pkgdir/package" "$OUT/$licence_dest"
    printf '  (no licence file in the package; MIT per package.json) -> %s\n' "$licence_dest" >> "$OUT/VERSIONS.txt"
  fi
  [ -n "$files" ] || echo "  (licence only: bundled in @graphiql/plugin-explorer's plugin-explorer.umd.js)" >> "$OUT/VERSIONS.txt"
done

if [ "$CHECK" = 1 ]; then
  status=0
  for f in "$OUT"/*; do
    name="$(basename "$f")"
    if ! cmp -s "$f" "$DEST/$name"; then echo "differs or missing: graph/static/graphiql/$name"; status=1; fi
  done
  [ "$status" = 0 ] && echo "vendor_graphiql: graph/static/graphiql matches the pinned packages"
  exit "$status"
fi

mkdir -p "$DEST"
cp "$OUT"/* "$DEST"/
echo "vendor_graphiql: wrote $(ls "$OUT" | wc -l) files to ${DEST#"$ROOT"/}" >&2
cat "$DEST/VERSIONS.txt"
