#!/usr/bin/env bash
# Builds kube-apiserver and kubectl for one Kubernetes version from the Go module proxy.
#
# k8s.io/kubernetes cannot be `go install`ed directly: its go.mod replaces the staging modules
# (k8s.io/api, k8s.io/apimachinery, ...) with local paths. A throw-away wrapper module requires
# k8s.io/kubernetes and replaces each staging module with its published v0.X.Y instead.
#
# usage: build-kube.sh VERSION OUT_DIR      (VERSION like v1.36.3)
set -euo pipefail

version=${1:?usage: build-kube.sh VERSION OUT_DIR}
out=${2:?usage: build-kube.sh VERSION OUT_DIR}
staging_version="v0.${version#v1.}"

command -v go >/dev/null || { echo "error: go not found: install Go >= 1.24 (https://go.dev/dl)" >&2; exit 1; }

work=$(mktemp -d)
# A build of its own: two builds of one version at once (two checkouts starting their stacks)
# must not mix their outputs.
mkdir -p "$(dirname "$out")"
partial=$(mktemp -d "$out.partial.XXXXXX")
trap 'rm -rf "$work" "$partial"' EXIT
cd "$work"

# The upstream go.mod lists the staging modules and the godebug default we must copy.
upstream_mod=$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
[ -f "$upstream_mod" ] || { echo "error: could not download k8s.io/kubernetes@${version}" >&2; exit 1; }
go_line=$(grep -m1 '^go ' "$upstream_mod")
godebug_line=$(grep -m1 '^godebug ' "$upstream_mod" || true)
staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$upstream_mod")

{
  echo "module hostledger.dev/kube-build"
  echo
  echo "$go_line"
  [ -n "$godebug_line" ] && echo "$godebug_line"
  echo
  echo "require k8s.io/kubernetes ${version}"
  echo
  echo "replace ("
  for m in $staging; do echo "	$m => $m $staging_version"; done
  echo ")"
  echo
  echo "tool ("
  echo "	k8s.io/kubernetes/cmd/kube-apiserver"
  echo "	k8s.io/kubernetes/cmd/kubectl"
  echo ")"
} > go.mod

go mod tidy

major=$(echo "$version" | sed 's/^v\([0-9]*\)\..*/\1/')
minor=$(echo "$version" | sed 's/^v[0-9]*\.\([0-9]*\)\..*/\1/')
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=${version} -X $pkg.gitMajor=${major} -X $pkg.gitMinor=${minor}"
  ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

for cmd in kube-apiserver kubectl; do
  CGO_ENABLED=0 go build -trimpath -tags selinux,notest -ldflags "$ldflags" \
    -o "$partial/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
chmod 755 "$partial"
rm -rf "$out"
mv "$partial" "$out"
