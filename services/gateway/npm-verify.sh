#!/usr/bin/env bash
# Checks that third-party files the gateway embeds are exactly those of the
# npm packages pinned in <dir>/package-lock.json: Swagger UI (swaggerui/dist)
# and the web panel's libraries (webui/vendor).
#   ./npm-verify.sh <dir> <embedded folder> <Go test>           install and compare
#   ./npm-verify.sh <dir> <embedded folder> <Go test> --update  install and copy in
# <dir>/npm-files lists one "<embedded file> <file under node_modules>" per
# line. A plain `go build` never needs npm: the embedded files are committed.
set -euo pipefail
dir=$1 out=$2 gotest=$3 mode=${4:-}
cd "$(dirname "$0")/$dir"
# --ignore-scripts: no install-time scripts run (swagger-ui-dist's
# dependency @scarf/scarf would only make an analytics call).
npm ci --ignore-scripts --no-audit --no-fund --silent
mapfile -t pairs < <(grep -v '^[[:space:]]*\(#\|$\)' npm-files)
if [[ "$mode" == "--update" ]]; then
  rm -rf "$out" && mkdir -p "$out"
  for p in "${pairs[@]}"; do read -r dst src <<<"$p"; cp "node_modules/$src" "$out/$dst"; done
  echo "$dir/$out/ now holds:" && npm ls --depth=0
  exit 0
fi
status=0
for p in "${pairs[@]}"; do
  read -r dst src <<<"$p"
  if ! cmp -s "node_modules/$src" "$out/$dst"; then
    echo "$dir/$out/$dst differs from the pinned node_modules/$src: run $0 $* --update" >&2
    status=1
  fi
done
extra=$(comm -13 <(for p in "${pairs[@]}"; do read -r dst _ <<<"$p"; echo "$dst"; done | sort) <(ls "$out" | sort))
if [[ -n "$extra" ]]; then
  echo "$dir/$out/ has files the gateway does not use: $extra" >&2
  status=1
fi
# The Go test compares too, now that node_modules is there.
(cd .. && go test -run "$gotest" -count=1 .) || status=1
exit $status
