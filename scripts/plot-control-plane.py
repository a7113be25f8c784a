#!/usr/bin/env python3
"""Draws the control-plane figures of `coordinator load-test` as one SVG (no plotting
library needed): coordinator CPU per heartbeat, last join to all ranks, and heartbeat
p99 (quiet and, where measured, flooded) against the number of nodes, log-log.

    scripts/plot-control-plane.py FIGURES.jsonl OUT.svg [LABEL=OTHER.jsonl ...]

FIGURES.jsonl holds the JSON lines `coordinator load-test` prints (one per size); each
LABEL=FILE adds another series of the same fields (an earlier build, say)."""

import json
import math
import sys

W, H, PAD = 300, 240, 48
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def cpu_per_beat_ms(r):
    beats_per_s = r["nodes"] / (r["heartbeat_ms"] / 1000.0)
    return r["coordinator_cpu_per_s"] / beats_per_s * 1000.0


PANELS = [
    ("coordinator CPU per heartbeat (ms)", cpu_per_beat_ms),
    ("last join to all ranks (ms)", lambda r: r["join_to_ranks_ms"]),
    ("heartbeat p99 (ms)", lambda r: r["heartbeat_p99_ms"]),
]


def log_range(values):
    lo = min(values)
    hi = max(values)
    return math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + (lo == hi)


def panel(x0, title, series):
    xs = [r["nodes"] for _, rows, _ in series for r in rows]
    ys = [v for _, rows, f in series for r in rows if (v := f(r)) > 0]
    (xl, xh), (yl, yh) = log_range(xs), log_range(ys)
    sx = lambda x: x0 + PAD + (math.log10(x) - xl) / (xh - xl) * (W - PAD - 10)
    sy = lambda y: H - PAD + 10 - (math.log10(y) - yl) / (yh - yl) * (H - PAD - 20)
    out = [f'<text x="{x0 + W / 2 + 20}" y="14" text-anchor="middle" font-size="12">{title}</text>']
    out.append(f'<rect x="{x0 + PAD}" y="10" width="{W - PAD - 10}" height="{H - PAD - 20}" fill="none" stroke="#999"/>')
    for e in range(yl, yh + 1):
        y = sy(10**e)
        out.append(f'<line x1="{x0 + PAD}" x2="{x0 + W - 10}" y1="{y}" y2="{y}" stroke="#eee"/>')
        out.append(f'<text x="{x0 + PAD - 4}" y="{y + 4}" text-anchor="end" font-size="10">{10.0**e:g}</text>')
    for e in range(xl, xh + 1):
        x = sx(10**e)
        out.append(f'<text x="{x}" y="{H - PAD + 24}" text-anchor="middle" font-size="10">{10**e:g}</text>')
    for n in sorted(set(xs)):
        out.append(f'<text x="{sx(n)}" y="{H - PAD + 36}" text-anchor="middle" font-size="8" fill="#666">{n}</text>')
    out.append(f'<text x="{x0 + W / 2 + 20}" y="{H - 2}" text-anchor="middle" font-size="10">nodes (8 ranks each)</text>')
    for (label, rows, f), colour in zip(series, COLOURS):
        pts = [(sx(r["nodes"]), sy(f(r))) for r in sorted(rows, key=lambda r: r["nodes"]) if f(r) > 0]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (colour, " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)))
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in pts]
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    runs = [("this build", load(sys.argv[1]))]
    for arg in sys.argv[3:]:
        label, _, path = arg.partition("=")
        runs.append((label, load(path)))
    flooded = [r for r in runs[0][1] if r.get("flooded_heartbeats")]
    body = []
    for i, (title, f) in enumerate(PANELS):
        series = [(label, rows, f) for label, rows in runs]
        if f is PANELS[2][1] and flooded:
            series.append(("this build, one client flooding", flooded, lambda r: r["flooded_heartbeat_p99_ms"]))
        body += panel(i * W, title, series)
    labels = [label for label, _ in runs] + (["this build, one client flooding (p99 panel)"] if flooded else [])
    for i, (label, colour) in enumerate(zip(labels, COLOURS)):
        body.append(f'<rect x="{10 + i * 260}" y="{H + 8}" width="12" height="12" fill="{colour}"/>')
        body.append(f'<text x="{28 + i * 260}" y="{H + 18}" font-size="11">{label}</text>')
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="{3 * W}" height="{H + 30}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{"".join(body)}</svg>\n'
    with open(sys.argv[2], "w") as f:
        f.write(svg)


if __name__ == "__main__":
    main()
