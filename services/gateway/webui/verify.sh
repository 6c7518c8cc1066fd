#!/usr/bin/env bash
# Checks that the third-party files the web panel embeds (vendor/) are
# exactly those of the npm packages pinned in package-lock.json. The
# panel's own code (app/) is plain ES modules: nothing to build.
#   ./verify.sh           install the pinned packages and compare
#   ./verify.sh --update  install them and copy the files into vendor/
# A plain `go build` never needs npm: vendor/ is committed.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --ignore-scripts --no-audit --no-fund --silent
# vendor/<name> <- node_modules/<path>
pairs=(
  "preact-htm.js:htm/preact/standalone.module.js"
  "LICENSE-htm:htm/LICENSE"
  "uPlot.esm.js:uplot/dist/uPlot.esm.js"
  "uPlot.min.css:uplot/dist/uPlot.min.css"
  "LICENSE-uplot:uplot/LICENSE"
)
if [[ "${1:-}" == "--update" ]]; then
  rm -rf vendor && mkdir -p vendor
  for p in "${pairs[@]}"; do cp "node_modules/${p#*:}" "vendor/${p%%:*}"; done
  echo "vendor/ now holds htm $(node -p "require('./node_modules/htm/package.json').version") and uplot $(node -p "require('./node_modules/uplot/package.json').version")"
  exit 0
fi
status=0
for p in "${pairs[@]}"; do
  if ! cmp -s "node_modules/${p#*:}" "vendor/${p%%:*}"; then
    echo "vendor/${p%%:*} differs from the pinned node_modules/${p#*:}: run $0 --update" >&2
    status=1
  fi
done
extra=$(comm -13 <(for p in "${pairs[@]}"; do echo "${p%%:*}"; done | sort) <(ls vendor | sort))
if [[ -n "$extra" ]]; then
  echo "vendor/ has files the panel does not use: $extra" >&2
  status=1
fi
(cd .. && go test -run TestWebUIVendorMatchesNPM -count=1 .) || status=1
exit $status
