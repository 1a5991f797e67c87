#!/usr/bin/env bash
# Fetch GitHub's official REST description, webhook schemas and webhook examples, pinned, into a cache.
#
# The GitHub simulator validates every response and webhook payload it produces
# against these (tests/sandbox/openapi.py reads the versions from this file); the
# webhook router's tests send every example payload to the router.
# Usage: fetch-octokit-schemas.sh [CACHE_DIR]   (default: ${GHR_CACHE_DIR:-~/.cache/ghr})
set -euo pipefail

OCTOKIT_OPENAPI_VERSION=23.0.2
OCTOKIT_WEBHOOKS_SCHEMAS_VERSION=7.6.1
OCTOKIT_WEBHOOKS_EXAMPLES_VERSION=7.6.1

cache="${1:-${GHR_CACHE_DIR:-$HOME/.cache/ghr}}/octokit"
openapi_dir="$cache/openapi-${OCTOKIT_OPENAPI_VERSION}"
webhooks_dir="$cache/webhooks-schemas-${OCTOKIT_WEBHOOKS_SCHEMAS_VERSION}"
examples_dir="$cache/webhooks-examples-${OCTOKIT_WEBHOOKS_EXAMPLES_VERSION}"
# The description with $refs (13 MB); tests/sandbox/openapi.py resolves them when it
# splits it per operation. The dereferenced variant says the same in 70 MB.
description="package/generated/api.github.com.json"

command -v npm >/dev/null || { echo "fetch-octokit-schemas: npm is required (Node.js)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ ! -f "$openapi_dir/api.github.com.json" ]]; then
    npm pack --silent --pack-destination "$work" "@octokit/openapi@${OCTOKIT_OPENAPI_VERSION}" >/dev/null
    tar -xzf "$work/octokit-openapi-${OCTOKIT_OPENAPI_VERSION}.tgz" -C "$work" "$description"
    mkdir -p "$openapi_dir"
    mv "$work/$description" "$openapi_dir/api.github.com.json.tmp"
    mv "$openapi_dir/api.github.com.json.tmp" "$openapi_dir/api.github.com.json"
fi

if [[ ! -f "$webhooks_dir/schema.json" ]]; then
    npm pack --silent --pack-destination "$work" "@octokit/webhooks-schemas@${OCTOKIT_WEBHOOKS_SCHEMAS_VERSION}" >/dev/null
    tar -xzf "$work/octokit-webhooks-schemas-${OCTOKIT_WEBHOOKS_SCHEMAS_VERSION}.tgz" -C "$work" package/schema.json
    mkdir -p "$webhooks_dir"
    mv "$work/package/schema.json" "$webhooks_dir/schema.json.tmp"
    mv "$webhooks_dir/schema.json.tmp" "$webhooks_dir/schema.json"
fi

# One index.json per GitHub variant (api.github.com, ghes-3.x): each event's example payloads.
if [[ ! -f "$examples_dir/api.github.com/index.json" ]]; then
    npm pack --silent --pack-destination "$work" "@octokit/webhooks-examples@${OCTOKIT_WEBHOOKS_EXAMPLES_VERSION}" >/dev/null
    mkdir -p "$work/examples"
    tar -xzf "$work/octokit-webhooks-examples-${OCTOKIT_WEBHOOKS_EXAMPLES_VERSION}.tgz" -C "$work/examples"
    rm -rf "$examples_dir.tmp"
    mkdir -p "$examples_dir.tmp"
    (cd "$work/examples/package" && find . -name index.json -exec cp --parents {} "$examples_dir.tmp/" \;)
    rm -rf "$examples_dir"
    mv "$examples_dir.tmp" "$examples_dir"
fi

echo "$openapi_dir"
echo "$webhooks_dir"
echo "$examples_dir"
