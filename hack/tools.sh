#!/usr/bin/env bash
# tools.sh builds the pinned control-plane binaries (kube-apiserver, kubectl,
# etcd) from source through the Go module proxy and caches them.
#
# The pins live in hack/tools/{kube,etcd}/go.mod (their `tool` and `require`
# lines); nothing else names a version. The cache directory is keyed by a hash
# of those go.mod/go.sum files and the Go version, so changing a pin rebuilds
# and an unchanged pin is reused. On success the script prints the directory
# holding the three binaries (usable as KUBEBUILDER_ASSETS).
#
# Usage: hack/tools.sh            build what is missing, print the bin dir
#        hack/tools.sh --print    print the bin dir, build nothing
# Environment: GUARD_TOOLS_CACHE  cache root (default ~/.cache/apiservice-guard/tools)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${GUARD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apiservice-guard/tools}"

key="$( { cat "$here"/tools/kube/go.mod "$here"/tools/kube/go.sum \
              "$here"/tools/etcd/go.mod "$here"/tools/etcd/go.sum; go env GOVERSION; } \
        | sha256sum | cut -c1-16)"
bin="$cache_root/$key"

if [[ "${1:-}" == "--print" ]]; then
  echo "$bin"
  exit 0
fi

# version reads the pinned version of a module from a tools go.mod.
version() { (cd "$here/tools/$1" && go list -m -f '{{.Version}}' "$2"); }

# build_one compiles one pinned tool into the cache unless it is already there.
# Binaries are written under a temporary name and renamed, so an interrupted
# build never leaves a half-written binary that looks cached.
build_one() {
  local module_dir="$1" pkg="$2" name="$3" ldflags="${4:-}"
  if [[ -x "$bin/$name" ]]; then
    return 0
  fi
  echo "hack/tools.sh: building $name ($pkg) into $bin; the first build takes several minutes" >&2
  mkdir -p "$bin"
  (cd "$here/tools/$module_dir" && \
    GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/.$name.tmp" "$pkg")
  mv "$bin/.$name.tmp" "$bin/$name"
}

kube_version="$(version kube k8s.io/kubernetes)"
kube_minor="$(echo "$kube_version" | cut -d. -f2)"
kube_ldflags="-X k8s.io/component-base/version.gitVersion=$kube_version \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$kube_minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$kube_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$kube_minor"

build_one etcd go.etcd.io/etcd/server/v3 etcd
build_one kube k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$kube_ldflags"
build_one kube k8s.io/kubernetes/cmd/kubectl kubectl "$kube_ldflags"

echo "$bin"
