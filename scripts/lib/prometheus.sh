#!/usr/bin/env bash
# Obtains (once) Prometheus for hostledger's end-to-end tests and prints the path of the
# `prometheus` binary (`promtool` is beside it).
#
# It comes from Debian's `prometheus` package, but is not installed: the package's maintainer
# scripts would add a system user and start a service. Instead the .deb is fetched with
# `apt-get download` (no root needed while the package lists are present) and unpacked with
# `dpkg-deb -x` (what `dpkg -x` runs) into the hostledger cache dir, under
# `prometheus/<Debian version>/`; a `.complete` marker says the unpacked tree was checked, so a
# second call is instant (~95 MB; the .deb itself is not kept).
#
# The binary is a Go program linked only against libc (checked below with ldd): it needs none
# of the package's dependencies. Those are the libjs-* files the old built-in web console links
# to, which are absent here; the HTTP API (/api/v1/...) and /metrics do not use them.
#
# The pin is the upstream version: bookworm ships 2.42.0 and changes only the Debian revision
# (…+deb12uN) in point releases, after which the old .deb is gone from the mirrors. So whatever
# revision of 2.42.0 bookworm currently has is taken, and cached under its full version.
#
# usage: prometheus=$(scripts/lib/prometheus.sh)
set -euo pipefail

PROMETHEUS_UPSTREAM=2.42.0

cache=${HOSTLEDGER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hostledger}
base=$cache/prometheus

# Fast path: a complete unpacked revision of the pinned upstream version (the newest, if several).
newest=$(printf '%s\n' "$base/$PROMETHEUS_UPSTREAM"+*/.complete | sort -V | tail -1)
if [ -f "$newest" ]; then
  echo "$(dirname "$newest")/usr/bin/prometheus"
  exit 0
fi

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found: Prometheus is taken from Debian's prometheus package (needs a Debian-based machine)" >&2; exit 1; }
done

mkdir -p "$base"
# Everything happens in a hidden scratch dir beside the result (never matched by the fast path),
# which is renamed into place only once checked: an interrupted call leaves nothing half-used.
work=$(mktemp -d "$base/.partial.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$work/log

# `apt-get download` writes into the current directory. As root, apt would hand the download
# to its `_apt` user, who cannot write to the scratch dir (mode 700), and warn; the option
# keeps it as the calling user.
download() {
  (cd "$work" && apt-get download -o APT::Sandbox::User=root prometheus) >>"$log" 2>&1
}
if ! download; then
  # On a fresh machine the package lists may be missing ("Unable to locate package") or stale
  # (the listed revision was replaced: 404); both are cured by `apt-get update`, which needs root.
  if grep -qE 'Unable to locate package|has no installation candidate|404 +Not Found' "$log"; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "error: apt cannot find Debian's prometheus package: run 'apt-get update' as root, then retry" >&2
      exit 1
    fi
    if ! { apt-get update -q && download; } >>"$log" 2>&1; then
      echo "error: could not download Debian's prometheus package (after apt-get update):" >&2
      tail -20 "$log" >&2
      exit 1
    fi
  else
    echo "error: could not download Debian's prometheus package:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
fi

deb=$(ls "$work"/prometheus_*.deb)
version=$(dpkg-deb -f "$deb" Version)
case $version in
  "$PROMETHEUS_UPSTREAM"+*) ;;
  *) echo "error: Debian's prometheus package is version $version, not $PROMETHEUS_UPSTREAM: check the tests against it, then update PROMETHEUS_UPSTREAM in $0" >&2; exit 1 ;;
esac

dir=$base/$version
partial=$work/root
if ! dpkg-deb -x "$deb" "$partial" >>"$log" 2>&1; then
  echo "error: could not unpack $(basename "$deb"):" >&2
  tail -20 "$log" >&2
  exit 1
fi
bin=$partial/usr/bin/prometheus
[ -x "$bin" ] || { echo "error: $(basename "$deb") has no usr/bin/prometheus" >&2; exit 1; }
if command -v ldd >/dev/null; then
  missing=$(ldd "$bin" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ' || true)
  [ -z "$missing" ] || { echo "error: $bin needs shared libraries this machine lacks: $missing" >&2; exit 1; }
fi
if ! "$bin" --version >>"$log" 2>&1; then
  echo "error: the unpacked prometheus does not run ($bin --version):" >&2
  tail -20 "$log" >&2
  exit 1
fi
touch "$partial/.complete"

# Rename into place; if a concurrent call got there first, its complete copy is used.
if ! mv -T "$partial" "$dir" 2>/dev/null && [ ! -f "$dir/.complete" ]; then
  echo "error: could not rename the unpacked package to $dir (an incomplete leftover? delete it and retry)" >&2
  exit 1
fi
echo "$dir/usr/bin/prometheus"
