"""Rendering results: a text table per workload, and ``docs/benchmarks.md`` with its plot."""

from __future__ import annotations

import math
from pathlib import Path

from bench.results import ResultSet, Row, WorkloadResult

REGENERATE = "python -m bench --report"
RUN_ALL = "python -m bench"  # or `make bench`


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def ratio_text(row: Row) -> str:
    ratio = row.ratio
    return "-" if ratio is None else f"{ratio:.2f}x"


def met_text(row: Row) -> str:
    return {True: "yes", False: "NO", None: ""}[row.met]


HEADER = ["case", "measure", "platform", "anchor", "ratio", "target", "met", "check", "notes"]


def row_cells(row: Row) -> list[str]:
    anchor = (
        f"{fmt(row.anchor, row.unit)} ({row.anchor_label})" if row.anchor is not None else (row.anchor_label or "-")
    )
    return [
        row.case,
        row.measure,
        fmt(row.value, row.unit),
        anchor,
        ratio_text(row),
        row.target,
        met_text(row),
        row.check,
        row.notes,
    ]


def markdown_table(rows: list[Row]) -> str:
    def clean(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(clean(c) for c in row_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def render_table(result: WorkloadResult) -> str:
    """Plain-text table for the terminal."""
    cells = [HEADER[:-1]] + [row_cells(r)[:-1] for r in result.rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER) - 1)]
    widths = [min(w, 60) for w in widths]
    lines = ["  ".join(c[i][:60].ljust(widths[i]) for i in range(len(widths))) for c in cells]
    notes = [f"  - {r.case} / {r.measure}: {r.notes}" for r in result.rows if r.notes]
    text = "\n".join(lines)
    if result.text:
        text += "\n" + result.text
    return text + ("\nnotes:\n" + "\n".join(notes) if notes else "")


def ascii_chart(rows: list[Row], width: int = 40) -> str:
    """Ratios on a log scale around 1.0x, for readers without the PNG."""
    items = [
        (f"{r.workload}: {r.case}, {r.measure} vs {r.anchor_label}", r.ratio)
        for r in rows
        if r.ratio is not None and r.ratio > 0
    ]
    if not items:
        return "(no ratios yet)"
    span = max(abs(math.log10(v)) for _, v in items) or 1.0
    half = width // 2
    label_width = min(max(len(label) for label, _ in items), 90)
    lines = [" " * label_width + "  " + "faster".rjust(half) + "|" + "slower".ljust(half) + "  ratio"]
    for label, value in items:
        n = round(abs(math.log10(value)) / span * half)
        bar = (
            (" " * (half - n) + "#" * n + "|" + " " * half)
            if value < 1
            else (" " * half + "|" + "#" * n + " " * (half - n))
        )
        lines.append(f"{label[:label_width].ljust(label_width)}  {bar}  {value:.2f}x")
    return "\n".join(lines)


def plotted(row: Row) -> bool:
    """Rows shown in the charts: the per-node overhead rows rather than the whole-run ratios to
    plain pandas on tiny data (hundreds to thousands x, and in the tables anyway)."""
    return not (row.workload == "overhead" and row.measure == "run time (steps: flow)")


def png_chart(rows: list[Row], path: Path) -> bool:
    """The same ratios as a PNG, when matplotlib is installed; False otherwise."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    items = [
        (f"{r.workload}: {r.case}, {r.measure}\nvs {r.anchor_label}", r.ratio)
        for r in rows
        if r.ratio is not None and r.ratio > 0
    ]
    if not items:
        return False
    fig, ax = plt.subplots(figsize=(13, 0.42 * len(items) + 1.5))
    labels = [label for label, _ in items][::-1]
    values = [value for _, value in items][::-1]
    colors = ["#2a9d8f" if v <= 1.3 else "#e9c46a" if v <= 3 else "#e76f51" for v in values]
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), labels, fontsize=7)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.2f}x", va="center", fontsize=7)
    ax.set_xlabel("platform / anchor (log scale; left of 1.0 = platform faster or smaller)")
    ax.set_title("dp-platform benchmarks: ratio to the anchor measured in the same run")
    fig.subplots_adjust(left=0.42, right=0.95, top=1 - 0.6 / fig.get_figheight(), bottom=0.7 / fig.get_figheight())
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def targets_table(rows: list[Row]) -> str:
    """The rows that carry a target from the issue, in one place."""
    chosen = [r for r in rows if r.target]
    if not chosen:
        return "(no targets measured yet)"
    lines = [
        "| workload | case | measure | platform | anchor | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in chosen:
        anchor = fmt(r.anchor, r.unit) if r.anchor is not None else "-"
        met = met_text(r) or ("not measured" if r.value is None else "")
        lines.append(
            f"| {r.workload} | {r.case} | {r.measure} | {fmt(r.value, r.unit)} | {anchor} | "
            f"{ratio_text(r)} | {r.target} | {met} |"
        )
    return "\n".join(lines)


def env_lines(results: ResultSet) -> list[str]:
    lines = []
    used = {r.env for w in results.workloads.values() for r in w.rows}
    for env_id, env in results.envs.items():
        if env_id not in used:
            continue
        versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
        lines.append(
            f"- `{env_id}`: {env.get('cores')} cores, {env.get('memory_gib')} GiB, "
            f"{env.get('cpu')}, {env.get('os')}; load average at start "
            f"{env.get('load_avg_at_start')}; revision {env.get('revision')}; {versions}"
        )
    return lines


def render_docs(results: ResultSet, docs: Path, intro: str | None = None) -> Path:
    from bench.registry import WORKLOADS

    docs.mkdir(parents=True, exist_ok=True)
    path = docs / "benchmarks.md"
    all_rows = [r for w in WORKLOADS if w.name in results.workloads for r in results.workloads[w.name].rows]
    chart_rows = [r for r in all_rows if plotted(r)]
    has_png = png_chart(chart_rows, docs / "benchmarks.png")
    parts = [
        "# Benchmarks",
        "",
        (
            f"Regenerate this page from the saved results: `{REGENERATE}`. Re-measure everything: "
            f"`{RUN_ALL}`; one workload: `python -m bench --only NAME` (then this page is re-rendered). "
            "CI runs `python -m bench --smoke` sizes through `tests/bench/test_bench_smoke.py`."
        ),
        "",
        intro or (Path(__file__).parent / "report_intro.md").read_text().strip(),
        "",
        "## Targets at a glance",
        "",
        targets_table(all_rows),
        "",
        "## Ratios",
        "",
        "![ratios](benchmarks.png)" if has_png else "(install matplotlib for the PNG plot)",
        "",
        "```",
        ascii_chart(chart_rows),
        "```",
        "",
    ]
    for workload in WORKLOADS:
        result = results.workloads.get(workload.name)
        if result is None:
            continue
        commands = sorted({r.command for r in result.rows if r.command})
        envs = sorted({r.env for r in result.rows if r.env})
        smoke = any(r.smoke for r in result.rows)
        parts += [
            f"## {result.title}",
            "",
            (
                f"Measured with `{'`, `'.join(commands)}` on environment `{', '.join(envs)}`"
                f"{' (SMOKE sizes)' if smoke else ''} in {result.seconds:.0f} s."
            ),
            "",
            markdown_table(result.rows),
            "",
        ]
        if result.text:
            parts += [result.text, ""]
    parts += ["## Environments", "", *env_lines(results), ""]
    path.write_text("\n".join(parts))
    return path
