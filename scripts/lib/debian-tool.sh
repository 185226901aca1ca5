#!/usr/bin/env bash
# Ensures a command from a Debian package is installed and prints its path: buildah (OCI images
# without a daemon) and docker-compose (`config` validates a compose file without an engine)
# come from Debian's packages here. Installed with apt-get once (needs root the first time).
#
# usage: path=$(scripts/lib/debian-tool.sh COMMAND PACKAGE)
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 COMMAND PACKAGE" >&2; exit 2; }
command=$1 package=$2
if path=$(command -v "$command"); then
  echo "$path"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "error: $command not found: install Debian's $package package (as root: apt-get install --no-install-recommends $package)" >&2
  exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$package" >"$log" 2>&1; }
# The package lists may be missing or stale on a new machine: refresh them once and retry.
install || { apt-get update -q >>"$log" 2>&1 && install; } || {
  tail -20 "$log" >&2
  echo "error: apt-get install $package failed (output above)" >&2
  exit 1
}
command -v "$command" || { echo "error: $package is installed but $command is not on PATH" >&2; exit 1; }
