#!/usr/bin/env python3
"""Writes an archive of weekly data-centre exports, one CSV a week, named by its date, for
`hostledger backfill`: a year of history leading up to the current export, with the churn of a
real data centre. Deterministic: the same arguments give the same files.

    scripts/lib/demo-archive.py --export deploy/examples/dc-inventory.csv --out ARCHIVE
    scripts/lib/demo-archive.py --hosts 10000 --out ARCHIVE        # a synthetic fleet

The fleet is the export's hosts (or --hosts synthetic ones) plus a few older hosts that were
decommissioned during the year and then dropped from the export. Over --weeks weeks ending one
week before --end (default: today), each week's export says:
- racked: about a quarter of the hosts arrive during the year as `staged` and go `active` one
  to three weeks later; the export's `staged` hosts arrive in the last weeks (two only in the
  current export, so the live fetcher discovers them);
- maintenance: an active host goes into `maintenance` for one to three weeks, now and then;
  the export's hosts in maintenance now were still active in the last archived week;
- decommissioned: the older hosts are `decommissioned` and disappear from later exports; one
  of them comes back into service for a while first;
- missing: one host is absent from three weekly exports, then listed again;
- changed: one host changes role half-way through the year.
"""

import argparse
import csv
import datetime as dt
import os
import random
import sys

COLUMNS = ["serial", "hostname", "site", "zone", "status", "role", "team", "ips", "model", "rack", "purchased"]
ROLES = [("log", "observability"), ("metrics", "observability"), ("db", "data"), ("web", "storefront"),
         ("cache", "storefront"), ("build", "ci"), ("kafka", "data"), ("bastion", "infra")]
SITES = [("pdx1", "PX", "10.10"), ("fra2", "FR", "10.20")]


def synthetic(n):
    hosts = []
    for i in range(n):
        site, prefix, net = SITES[i % len(SITES)]
        role, team = ROLES[(i // len(SITES)) % len(ROLES)]
        hosts.append({
            "serial": f"{prefix}{100000 + i}", "hostname": f"{role}-{site}-{i:05d}", "site": site,
            "zone": f"hall-{'ab'[i % 2]}", "status": "active", "role": role, "team": team,
            "ips": f"{net}.{i // 250 % 250}.{i % 250 + 1}", "model": "R650",
            "rack": f"{'ABCD'[i % 4]}{i % 40 + 1:02d}", "purchased": f"{2019 + i % 6}-{i % 12 + 1:02d}-15",
        })
    return hosts


def read_export(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for column in COLUMNS:
            row.setdefault(column, "")
    return rows


def older_hosts(count, rng):
    hosts = []
    for i in range(count):
        site, prefix, net = SITES[i % len(SITES)]
        role, team = ROLES[rng.randrange(len(ROLES))]
        hosts.append({
            "serial": f"{prefix}0{3900 + i}", "hostname": f"{role}-{site}-old{i + 1}", "site": site,
            "zone": "hall-c", "status": "active", "role": role, "team": team,
            "ips": f"{net}.9.{i + 1}", "model": "R640", "rack": f"C{i + 1:02d}", "purchased": "2017-06-15",
        })
    return hosts


def timelines(current, older, weeks, rng):
    """The status of every host in every week (None: not in that week's export)."""
    plan = {}
    for host in current:
        status_now = host["status"].strip().lower()
        weekly = ["active"] * weeks
        if status_now == "staged":
            arrive = rng.randrange(weeks - 6, weeks + 1)   # weeks: arrives in the live export
            weekly = [None if w < arrive else "staged" for w in range(weeks)]
        elif rng.random() < 0.25:
            arrive = rng.randrange(1, weeks - 8)
            ready = arrive + rng.randrange(1, 4)
            weekly = [None if w < arrive else "staged" if w < ready else "active" for w in range(weeks)]
        w = 0
        while w < weeks:
            if weekly[w] == "active" and rng.random() < 0.03 and w < weeks - 1:
                for k in range(w, min(weeks - 1, w + rng.randrange(1, 4))):
                    weekly[k] = "maintenance"
                w += 4
            w += 1
        if status_now == "decommissioned":
            gone = rng.randrange(weeks // 2, weeks - 4)
            weekly = [s if w < gone else "decommissioned" for w, s in enumerate(weekly)]
        plan[host["serial"]] = weekly
    for i, host in enumerate(older):
        retire = rng.randrange(weeks // 5, weeks - 10)
        drop = retire + rng.randrange(2, 5)
        weekly = ["active" if w < retire else "decommissioned" if w < drop else None for w in range(weeks)]
        if i == 0:  # comes back into service for a while before it goes for good
            back, again = retire + 2, retire + 8
            weekly = ["active" if w < retire or back <= w < again else "decommissioned" if w < again + 3 else None
                      for w in range(weeks)]
        plan[host["serial"]] = weekly
    actives = [h["serial"] for h in current if all(s == "active" for s in plan[h["serial"]][weeks // 2:])]
    if actives:
        lost = rng.choice(actives)
        start = rng.randrange(weeks // 3, weeks - 8)
        for w in range(start, start + 3):
            plan[lost][w] = None
    return plan


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", help="the current export (CSV) the year leads up to")
    source.add_argument("--hosts", type=int, help="a synthetic fleet of this many hosts instead")
    parser.add_argument("--out", required=True, help="directory to write the weekly CSVs into")
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--end", default=dt.date.today().isoformat(),
                        help="the current export's date (YYYY-MM-DD); the last archived week is 7 days before")
    parser.add_argument("--name", default="dc-sample", help="file name prefix")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    if args.weeks < 12:
        sys.exit("error: --weeks must be at least 12")
    try:
        end = dt.date.fromisoformat(args.end)
    except ValueError:
        sys.exit(f"error: --end {args.end!r} is not a date (YYYY-MM-DD)")

    rng = random.Random(args.seed)
    current = read_export(args.export) if args.export else synthetic(args.hosts)
    older = older_hosts(max(3, len(current) // 8), rng)
    plan = timelines(current, older, args.weeks, rng)
    role_change = next((h for h in current if plan[h["serial"]][0] == "active"), None)

    os.makedirs(args.out, exist_ok=True)
    for w in range(args.weeks):
        day = end - dt.timedelta(weeks=args.weeks - w)
        path = os.path.join(args.out, f"{args.name}-{day.isoformat()}.csv")
        with open(path, "w", newline="", encoding="utf-8") as f:
            out = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            out.writeheader()
            for host in current + older:
                status = plan[host["serial"]][w]
                if status is None:
                    continue
                row = dict(host, status=status)
                if host is role_change and w < args.weeks // 2:
                    row["role"] = "web" if host["role"] != "web" else "cache"
                out.writerow(row)
    print(f"{args.weeks} weekly exports of {len(current) + len(older)} hosts in {args.out}, "
          f"{(end - dt.timedelta(weeks=args.weeks)).isoformat()} to {(end - dt.timedelta(weeks=1)).isoformat()}")


if __name__ == "__main__":
    main()
