#!/usr/bin/env python3
"""Draws the README's two benchmark charts from criterion's own output.

Reads `<criterion dir>/**/new/benchmark.json` and the `estimates.json`
beside each (criterion writes both on every run) for the `broker` bench's
groups `patterns_hot_channel`, `patterns_new_channel` and `fanout`, and
writes two SVG files:

* `patterns.svg`: time per publish against the number of patterns held,
  tannoy beside the Redis-style linear scan, on log-log axes;
* `fanout.svg`: time per delivery against the number of subscribers,
  tannoy beside tokio's broadcast channel.

Each point is criterion's median, with its 95% confidence interval as a
whisker. Each chart names the CPU (from `lscpu`) and the commit measured.
Only the Python standard library is used.

Usage: plot.py [--criterion DIR] [--out DIR]
(`benches/charts/regenerate.sh` runs the benchmarks, then this.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

PATTERN_COUNTS = [10, 100, 1_000, 10_000]
SUBSCRIBER_COUNTS = [1, 16, 64, 256, 1024]

TANNOY = "#1f5fa8"
PEER = "#c8482f"

# Canvas and plot area, in SVG user units.
WIDTH, HEIGHT = 800, 470
LEFT, RIGHT, TOP, BOTTOM = 82, 560, 78, 388


@dataclass
class Point:
    """One measured point: x, and criterion's median with its 95% CI (ns)."""

    x: float
    median: float
    low: float
    high: float


@dataclass
class Series:
    """One line on a chart."""

    label: str
    color: str
    dashed: bool
    points: list[Point]


def load_estimates(criterion_dir: Path) -> dict[tuple[str, str, str], dict]:
    """Maps (group, function, parameter) to that benchmark's median estimate."""
    found: dict[tuple[str, str, str], dict] = {}
    for bench in criterion_dir.glob("**/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        key = (meta["group_id"], meta["function_id"] or "", meta["value_str"] or "")
        found[key] = estimates["median"]
    return found


def series(
    estimates: dict[tuple[str, str, str], dict],
    group: str,
    function: str,
    xs: list[int],
    label: str,
    color: str,
    dashed: bool = False,
    per_x: bool = False,
) -> Series:
    """The points of one function across a group's sweep; `per_x` divides
    each time by x (time per delivery rather than per publish)."""
    points = []
    missing = []
    for x in xs:
        median = estimates.get((group, function, str(x)))
        if median is None:
            missing.append(f"{group}/{function}/{x}")
            continue
        scale = x if per_x else 1
        ci = median["confidence_interval"]
        points.append(
            Point(
                x,
                median["point_estimate"] / scale,
                ci["lower_bound"] / scale,
                ci["upper_bound"] / scale,
            )
        )
    if missing:
        sys.exit(
            "plot.py: no criterion results for "
            + ", ".join(missing)
            + " (run benches/charts/regenerate.sh)"
        )
    return Series(label, color, dashed, points)


def cpu_description() -> str:
    """The CPU as `lscpu` names it: model name, family, model, and count."""
    try:
        out = subprocess.run(
            ["lscpu"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "LC_ALL": "C"},
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        sys.exit(f"plot.py: lscpu failed ({err}); the charts must name the CPU")
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("Model name", "unknown CPU")
    parts = [name]
    if "CPU family" in fields and "Model" in fields:
        parts.append(f"family {fields['CPU family']} model {fields['Model']}")
    if "CPU(s)" in fields:
        parts.append(f"{fields['CPU(s)']} CPUs")
    return ", ".join(parts)


def commit_description() -> str:
    """The commit measured, marked when the engine or benches had local edits."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--",
             "src", "benches", "Cargo.toml"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        sys.exit(f"plot.py: git failed ({err}); the charts must name the commit")
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


def fmt_time(ns: float) -> str:
    """A duration in ns as a short label: 150 ns, 2.5 µs, 1 ms."""
    for unit, size in (("ms", 1e6), ("µs", 1e3)):
        if ns >= size:
            return f"{ns / size:g} {unit}"
    return f"{ns:g} ns"


def fmt_count(n: float) -> str:
    """A count with thousands separators."""
    return f"{int(n):,}"


class Axis:
    """Maps data values onto a pixel range, linearly or by log10."""

    def __init__(self, lo: float, hi: float, start: float, end: float, log: bool):
        self.log = log
        self.lo = math.log10(lo) if log else lo
        self.hi = math.log10(hi) if log else hi
        self.start, self.end = start, end

    def __call__(self, v: float) -> float:
        v = math.log10(v) if self.log else v
        return self.start + (v - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def text(x: float, y: float, s: str, size: int = 12, anchor: str = "start",
         weight: str = "normal", color: str = "#222") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'font-weight="{weight}" fill="{color}">{escape(s)}</text>'
    )


def chart(
    title: str,
    subtitle: str,
    x_label: str,
    y_label: str,
    lines: list[Series],
    x_ticks: list[float],
    x_fmt,
    x_log: bool,
    y_log: bool,
    note: str,
) -> str:
    """One SVG line chart with a legend, whiskers and labelled axes."""
    xs = [p.x for s in lines for p in s.points]
    lows = [p.low for s in lines for p in s.points]
    highs = [p.high for s in lines for p in s.points]
    if x_log:
        x_axis = Axis(min(xs) / 1.6, max(xs) * 1.6, LEFT, RIGHT, log=True)
    else:
        x_axis = Axis(0, max(xs) * 1.05, LEFT, RIGHT, log=False)
    if y_log:
        y_lo = 10 ** math.floor(math.log10(min(lows)))
        y_hi = 10 ** math.ceil(math.log10(max(highs)))
        y_ticks = []
        v = y_lo
        while v <= y_hi * 1.0001:
            y_ticks.append(v)
            v *= 10
    else:
        y_lo = 0.0
        step = nice_step(max(highs) / 5)
        y_hi = step * math.ceil(max(highs) * 1.08 / step)
        y_ticks = [i * step for i in range(int(round(y_hi / step)) + 1)]
    y_axis = Axis(y_lo, y_hi, BOTTOM, TOP, log=y_log)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        text(LEFT, 28, title, size=17, weight="bold"),
        text(LEFT, 50, subtitle, size=12, color="#555"),
    ]
    # Minor gridlines for log axes, then major ones with labels.
    if y_log:
        decade = y_lo
        while decade < y_hi:
            for m in range(2, 10):
                y = y_axis(decade * m)
                out.append(f'<line x1="{LEFT}" x2="{RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                           'stroke="#eee" stroke-width="1"/>')
            decade *= 10
    for t in y_ticks:
        y = y_axis(t)
        out.append(f'<line x1="{LEFT}" x2="{RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#d8d8d8" stroke-width="1"/>')
        out.append(text(LEFT - 8, y + 4, fmt_time(t), size=11, anchor="end", color="#444"))
    for t in x_ticks:
        x = x_axis(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{BOTTOM}" '
                   'stroke="#e4e4e4" stroke-width="1"/>')
        out.append(text(x, BOTTOM + 18, x_fmt(t), size=11, anchor="middle", color="#444"))
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{RIGHT - LEFT}" height="{BOTTOM - TOP}" '
               'fill="none" stroke="#888" stroke-width="1"/>')
    out.append(text((LEFT + RIGHT) / 2, BOTTOM + 42, x_label, size=13, anchor="middle"))
    out.append(
        f'<text transform="translate(22 {(TOP + BOTTOM) / 2:.1f}) rotate(-90)" '
        f'font-size="13" text-anchor="middle" fill="#222">{escape(y_label)}</text>'
    )

    for s in lines:
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x_axis(p.x):.1f},{y_axis(p.median):.1f}"
            for i, p in enumerate(s.points)
        )
        out.append(f'<path d="{path}" fill="none" stroke="{s.color}" stroke-width="2.2"{dash}/>')
        for p in s.points:
            x = x_axis(p.x)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_axis(p.low):.1f}" '
                       f'y2="{y_axis(p.high):.1f}" stroke="{s.color}" stroke-width="1.2"/>')
            fill = "white" if s.dashed else s.color
            out.append(f'<circle cx="{x:.1f}" cy="{y_axis(p.median):.1f}" r="3.6" '
                       f'fill="{fill}" stroke="{s.color}" stroke-width="1.6"/>')

    # Legend, right of the plot, with each series' last value.
    ly = TOP + 8
    for s in lines:
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(f'<line x1="{RIGHT + 18}" x2="{RIGHT + 46}" y1="{ly:.1f}" y2="{ly:.1f}" '
                   f'stroke="{s.color}" stroke-width="2.2"{dash}/>')
        label_lines = s.label.split("\n")
        for i, line in enumerate(label_lines):
            out.append(text(RIGHT + 52, ly + 4 + i * 15, line, size=12))
        last = s.points[-1]
        out.append(text(RIGHT + 52, ly + 4 + len(label_lines) * 15,
                        f"{fmt_time(round_sig(last.median))} at {x_fmt(last.x)}",
                        size=11, color="#666"))
        ly += 26 + len(label_lines) * 15
    for i, line in enumerate(note.split("\n")):
        out.append(text(LEFT, HEIGHT - 26 + i * 14, line, size=10.5, color="#666"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def round_sig(v: float, digits: int = 3) -> float:
    """`v` rounded to `digits` significant digits."""
    return round(v, digits - 1 - math.floor(math.log10(abs(v)))) if v else 0.0


def default_criterion_dir() -> Path:
    """Where criterion wrote: $CRITERION_HOME, else $CARGO_TARGET_DIR/criterion,
    else target/criterion in the repository."""
    if os.environ.get("CRITERION_HOME"):
        return Path(os.environ["CRITERION_HOME"])
    target = os.environ.get("CARGO_TARGET_DIR")
    return (Path(target) if target else REPO / "target") / "criterion"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--criterion", type=Path, default=default_criterion_dir(),
                        help="criterion's output directory")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the SVGs")
    args = parser.parse_args()
    if not args.criterion.is_dir():
        sys.exit(f"plot.py: {args.criterion} does not exist (run benches/charts/regenerate.sh)")

    estimates = load_estimates(args.criterion)
    machine = f"{cpu_description()} · {commit_description()}"
    source = "cargo bench -p tannoy-benches --bench broker; points: criterion's median, whiskers: its 95% CI"

    patterns = chart(
        title="Publish cost against patterns held",
        subtitle=machine,
        x_label="patterns held (one subscriber holds them all)",
        y_label="time per publish (log)",
        lines=[
            series(estimates, "patterns_hot_channel", "tannoy", PATTERN_COUNTS,
                   "tannoy,\nsame channel each time", TANNOY),
            series(estimates, "patterns_new_channel", "tannoy", PATTERN_COUNTS,
                   "tannoy,\nnew channel each time", TANNOY, dashed=True),
            series(estimates, "patterns_hot_channel", "linear_scan", PATTERN_COUNTS,
                   "Redis-style linear scan,\nsame channel each time", PEER),
            series(estimates, "patterns_new_channel", "linear_scan", PATTERN_COUNTS,
                   "Redis-style linear scan,\nnew channel each time", PEER, dashed=True),
        ],
        x_ticks=PATTERN_COUNTS,
        x_fmt=fmt_count,
        x_log=True,
        y_log=True,
        note=source + "\ngroups patterns_hot_channel and patterns_new_channel; "
        "each publish also drains what it delivered",
    )
    fanout = chart(
        title="Cost per delivery against subscribers",
        subtitle=machine,
        x_label="subscribers of the channel (log)",
        y_label="time per delivery",
        lines=[
            series(estimates, "fanout", "tannoy", SUBSCRIBER_COUNTS,
                   "tannoy", TANNOY, per_x=True),
            series(estimates, "fanout", "tokio_broadcast", SUBSCRIBER_COUNTS,
                   "tokio broadcast", PEER, per_x=True),
        ],
        x_ticks=SUBSCRIBER_COUNTS,
        x_fmt=fmt_count,
        x_log=True,
        y_log=False,
        note=source + "\ngroup fanout: one publish, then every subscriber receives it; "
        "time per iteration / subscribers",
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "patterns.svg").write_text(patterns, encoding="utf-8")
    (args.out / "fanout.svg").write_text(fanout, encoding="utf-8")
    print(f"wrote {args.out / 'patterns.svg'} and {args.out / 'fanout.svg'} ({machine})")


if __name__ == "__main__":
    main()
