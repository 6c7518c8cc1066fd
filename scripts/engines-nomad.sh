#!/usr/bin/env bash
# Builds the Nomad agent the Nomad runtime's tests run (pkg/platform/nomadtest)
# into ~/.cache/mlpanel/engines/nomad-<version>, unless it is there already.
# Nomad >= 1.6.2 is BUSL-1.1: it is an engine the user runs, never shipped.
# Its api sub-module is not in the module zip, so the published
# pseudo-version of the same commit replaces the in-tree one.
# ~7 min and ~1.5 GB of memory on 2 cores.
set -euo pipefail
version=1.10.5
api=github.com/hashicorp/nomad/api@v0.0.0-20250909143645-a3b86c697f38
cache="${MLPANEL_ENGINES:-$HOME/.cache/mlpanel/engines}"
bin="$cache/nomad-$version"
if [[ -x "$bin" ]]; then
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/nomad-src.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOWORK=off GOFLAGS=-mod=mod
go mod download "github.com/hashicorp/nomad@v$version"
cp -r "$(go env GOMODCACHE)/github.com/hashicorp/nomad@v$version/." "$work"
chmod -R u+w "$work"
cd "$work"
go mod edit -dropreplace=github.com/hashicorp/nomad/api -require="$api"
go build -o "$bin.tmp" .
mv "$bin.tmp" "$bin"
echo "built $bin"
