#!/usr/bin/env python3
"""Prints the figures the benchmarks recorded (JSON lines, one per figure) as one table.

usage: bench-table.py FIGURES.jsonl [--json OUT] [--markdown]
"""
import json
import sys


def number(value, unit):
    if value is None:
        return "-"
    if unit == "s" and value < 10:
        return f"{value:.3f} s"
    if unit == "s":
        return f"{value:.1f} s"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


def main(argv):
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__.strip())
    figures = []
    with open(argv[0]) as f:
        for line in f:
            if line.strip():
                figures.append(json.loads(line))
    if "--json" in argv:
        with open(argv[argv.index("--json") + 1], "w") as out:
            json.dump(figures, out, indent=2)
            out.write("\n")
    rows = []
    for f in figures:
        floor = f.get("floor")
        ratio = "-"
        if floor:
            ratio = f"{f['value'] / floor:.2f}x"
        result = {True: "met", False: "NOT met", None: "-"}[f.get("pass")]
        floor_text = "-"
        if floor is not None:
            floor_text = f"{f.get('floor_name')}: {floor:,.3f}" if floor < 10 else f"{f.get('floor_name')}: {floor:,.0f}"
        rows.append((f["figure"], number(f["value"], f["unit"]), floor_text, ratio, f.get("target") or "-", result))
    header = ("figure", "value", "floor / baseline (same run)", "ratio", "target", "result")
    if "--markdown" in argv:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        for r in [header] + rows:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    met = sum(1 for f in figures if f.get("pass") is True)
    missed = sum(1 for f in figures if f.get("pass") is False)
    rest = len(figures) - met - missed
    print(f"\n{met} targets met, {missed} not met, {rest} {'figure' if rest == 1 else 'figures'} without a target")


if __name__ == "__main__":
    main(sys.argv[1:])
