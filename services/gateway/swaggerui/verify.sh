#!/usr/bin/env bash
# Checks that the Swagger UI files the gateway embeds (dist/) are exactly
# those of the swagger-ui-dist version pinned in package-lock.json.
#   ./verify.sh           install the pinned package and compare
#   ./verify.sh --update  install it and copy the files into dist/
# A plain `go build` never needs npm: dist/ is committed.
set -euo pipefail
cd "$(dirname "$0")"
# --ignore-scripts: the package's dependency @scarf/scarf only runs an
# install-time analytics call, which we neither need nor want.
npm ci --ignore-scripts --no-audit --no-fund --silent
src=node_modules/swagger-ui-dist
files=(swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png LICENSE NOTICE)
if [[ "${1:-}" == "--update" ]]; then
  rm -rf dist && mkdir -p dist
  for f in "${files[@]}"; do cp "$src/$f" dist/; done
  echo "dist/ now holds swagger-ui-dist $(node -p "require('./$src/package.json').version")"
  exit 0
fi
status=0
for f in "${files[@]}"; do
  if ! cmp -s "$src/$f" "dist/$f"; then
    echo "dist/$f differs from the pinned swagger-ui-dist: run $0 --update" >&2
    status=1
  fi
done
extra=$(comm -13 <(printf '%s\n' "${files[@]}" | sort) <(ls dist | sort))
if [[ -n "$extra" ]]; then
  echo "dist/ has files the gateway does not need: $extra" >&2
  status=1
fi
# The Go test compares too, now that node_modules is there.
(cd .. && go test -run TestSwaggerUIMatchesNPM -count=1 .)
exit $status
