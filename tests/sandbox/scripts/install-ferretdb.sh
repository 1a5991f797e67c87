#!/usr/bin/env bash
# Build FerretDB (a MongoDB wire-protocol server) for the tests, cached by version.
#
# `go install .../ferretdb@VERSION` yields a binary that panics at start: the module
# as published lacks build/version/version.txt. So build from the module source with
# that file written, as FerretDB's own build does.
set -euo pipefail

version="${FERRETDB_VERSION:-v1.24.2}"
bin="${1:?usage: install-ferretdb.sh OUTPUT_BINARY}"

if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -q "${version}"; then
    exit 0
fi
command -v go >/dev/null || { echo "install-ferretdb: Go is required to build FerretDB (see README)" >&2; exit 1; }

src_dir="$(go mod download -json "github.com/FerretDB/FerretDB@${version}" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$src_dir/." "$work/"
chmod -R u+w "$work"
echo "$version" > "$work/build/version/version.txt"
mkdir -p "$(dirname "$bin")"
(cd "$work" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" ./cmd/ferretdb)
mv "$bin.tmp" "$bin"
echo "install-ferretdb: built FerretDB ${version} at ${bin}"
