#!/usr/bin/env bash
# Reboots every in-service host matching a label selector, one host at a time, each under a
# hostledger lock: the lock is taken before the play touches the host (waiting up to 10
# minutes if someone else holds it), renewed while it runs, and released when it ends.
#
# usage: examples/ansible/rolling-reboot.sh SELECTOR [ansible-playbook arguments...]
#   e.g. examples/ansible/rolling-reboot.sh 'role=db,region=fra2' -e dry_run=true
set -euo pipefail
selector=${1:?usage: rolling-reboot.sh SELECTOR [ansible-playbook arguments...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
inventory=$here/../../deploy/hostledger-ansible-inventory
hosts=$(HOSTLEDGER_ANSIBLE_SELECTOR=$selector ansible-inventory -i "$inventory" --list \
  | python3 -c 'import json, sys; print("\n".join(sorted(json.load(sys.stdin).get("in_service", {}).get("hosts", []))))')
[ -n "$hosts" ] || { echo "no in-service hosts match $selector" >&2; exit 1; }
for host in $hosts; do
  hostledger with-lock "$host" --reason "rolling reboot ($selector)" --wait 10m -- \
    ansible-playbook -i "$inventory" "$here/rolling-reboot.yml" --limit "$host" "$@"
done
