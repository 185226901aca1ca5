#!/usr/bin/env python3
"""hostledger exec plugin for "Acme Cloud", a fictional provider.

Prints the hosts of an Acme Cloud account in the format `hostledger fetch` reads from exec
plugins (see producers/src/provider/exec.rs):

    {"hosts": [{"id": ..., "name": ..., "lifecycle": ..., ...}]}

A real plugin would call the provider's API here. This one reads the account's state from the
JSON file named by ACME_STATE_FILE (a list of Acme machines, as Acme's API would return them),
or uses a small built-in account when the variable is unset. Acme's own states are mapped
onto hostledger's lifecycle. Any failure exits non-zero with a message on stderr, which
hostledger reports and treats as a failed listing (nothing is published).
"""

import json
import os
import sys

BUILT_IN = [
    {"machine_id": "vm-1842", "label": "web-ams-1", "state": "running", "dc": "ams", "rack_zone": "ams-b",
     "tags": {"role": "web", "team": "storefront", "image": "debian-12"}, "ipv4": "10.30.0.12", "plan": "m.large"},
    {"machine_id": "vm-1843", "label": "web-ams-2", "state": "running", "dc": "ams", "rack_zone": "ams-c",
     "tags": {"role": "web", "team": "storefront", "image": "debian-12"}, "ipv4": "10.30.0.13", "plan": "m.large"},
    {"machine_id": "vm-2001", "label": "queue-ams-1", "state": "booting", "dc": "ams", "rack_zone": "ams-b",
     "tags": {"role": "queue", "team": "data"}, "ipv4": "10.30.1.5", "plan": "m.xlarge"},
    {"machine_id": "vm-0977", "label": "legacy-ams-1", "state": "halted", "dc": "ams", "rack_zone": "ams-a",
     "tags": {"role": "legacy", "team": "platform"}, "ipv4": "10.30.9.2", "plan": "s.small"},
]

# Acme's machine states → hostledger lifecycle.
LIFECYCLE = {
    "booting": "Provisioning",
    "running": "InService",
    "halted": "OutOfService",
    "maintenance": "OutOfService",
    "destroyed": "Retired",
}


def main():
    path = os.environ.get("ACME_STATE_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                machines = json.load(f)
        except (OSError, ValueError) as e:
            print(f"acme: cannot read account state {path}: {e}", file=sys.stderr)
            return 2
    else:
        machines = BUILT_IN
    hosts = []
    for m in machines:
        state = m.get("state", "")
        if state not in LIFECYCLE:
            print(f"acme: machine {m.get('machine_id')} has unknown state {state!r}", file=sys.stderr)
            return 3
        tags = dict(m.get("tags", {}))
        hosts.append({
            "id": f"{m['dc']}/{m['machine_id']}",
            "name": m["label"],
            "lifecycle": LIFECYCLE[state],
            "status": state,
            "region": m["dc"],
            "zone": m.get("rack_zone"),
            "role": tags.pop("role", None),
            "team": tags.pop("team", None),
            "addresses": [m["ipv4"]] if m.get("ipv4") else [],
            "machine_type": m.get("plan"),
            "attributes": {k: str(v) for k, v in tags.items()},
        })
    json.dump({"hosts": hosts}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
