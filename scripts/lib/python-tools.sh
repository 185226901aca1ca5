#!/usr/bin/env bash
# Creates (once) a Python virtual environment with the test tools hostledger's end-to-end
# tests use, and prints its bin directory:
#   moto[server]   an EC2-compatible endpoint on loopback (the AWS provider's tests)
#   ansible-core   ansible-inventory, to check the Ansible inventory hostledger exports
#                  (2.18 runs on Python 3.11-3.13; from 2.20 on ansible-core needs >= 3.12)
#   confluent-kafka, fastavro   what examples/consumers/python runs on: a Kafka consumer
#                  and an Avro implementation that is not hostledger's
# Pinned; cached by the pins under the hostledger cache dir, so a second call is instant and
# changing a pin builds a new venv once (old ones are left in the cache, like other versions).
#
# usage: bin=$(scripts/lib/python-tools.sh)
set -euo pipefail

PINS=("moto[server]==5.2.5" "ansible-core==2.18.19" "confluent-kafka==2.16.1" "fastavro==1.13.1")

cache=${HOSTLEDGER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hostledger}
key=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)
venv=$cache/python-tools/$key

# A venv is not relocatable, so it is built in place; a marker says it is complete.
if [ ! -f "$venv/.complete" ]; then
  command -v python3 >/dev/null || { echo "error: python3 not found: install Python >= 3.9" >&2; exit 1; }
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  log=$(mktemp)
  if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"; } >"$log" 2>&1; then
    echo "error: could not install the Python test tools (${PINS[*]}) into $venv:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$venv/.complete"
fi
echo "$venv/bin"
