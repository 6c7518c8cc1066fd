#!/usr/bin/env bash
# Builds the Kubernetes control plane the tests run (pkg/platform/kubetest):
# kube-apiserver, kube-controller-manager and kube-scheduler v1.36.3 from the
# Go module proxy, and kwok (fake nodes), into
# ~/.cache/mlpanel/engines/k8s-1.36.3/bin (or $MLPANEL_K8S_BIN). Does nothing
# when they are there already. Once per machine: ~15 min and ~2.5 GB of
# memory at the peak on 2 cores. etcd and kubectl are Debian's packages
# (etcd-server, kubernetes-client).
set -euo pipefail
VERSION=1.36.3
KWOK=v0.7.0
BIN=${MLPANEL_K8S_BIN:-$HOME/.cache/mlpanel/engines/k8s-$VERSION/bin}
missing=()
for c in kube-apiserver kube-controller-manager kube-scheduler kwok; do
  [[ -x "$BIN/$c" ]] || missing+=("$c")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "Kubernetes $VERSION binaries are in $BIN"
  exit 0
fi
echo "building ${missing[*]} into $BIN"
mkdir -p "$BIN"
export GOWORK=off GOFLAGS=-mod=mod
src=$(mktemp -d)
trap 'chmod -R u+w "$src" 2>/dev/null; rm -rf "$src"' EXIT
need_k8s=false
for c in "${missing[@]}"; do [[ $c != kwok ]] && need_k8s=true; done
if $need_k8s; then
  go mod download "k8s.io/kubernetes@v$VERSION"
  cp -r "$(go env GOMODCACHE)/k8s.io/kubernetes@v$VERSION" "$src/k8s"
  chmod -R u+w "$src/k8s"
  cd "$src/k8s"
  rm -f go.work go.work.sum
  # The module zip replaces k8s.io/* with ./staging, which it does not
  # hold: use the published modules of the same release instead.
  args=()
  for m in $(grep '=> ./staging' go.mod | awk '{print $1}'); do
    args+=("-dropreplace=$m" "-require=$m@v0.${VERSION#1.}")
  done
  go mod edit "${args[@]}"
  go mod edit -droprequire=k8s.io/sample-cli-plugin
  # kubectl refuses a server without a version.
  minor=$(echo "$VERSION" | cut -d. -f2)
  L="-s -w -X k8s.io/component-base/version.gitVersion=v$VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  for c in "${missing[@]}"; do
    [[ $c == kwok ]] && continue
    echo "go build $c"
    go build -ldflags "$L" -o "$BIN/$c" "./cmd/$c"
  done
  cd - >/dev/null
fi
if [[ ! -x "$BIN/kwok" ]]; then
  GOBIN="$BIN" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK"
fi
echo "Kubernetes $VERSION binaries are in $BIN"
