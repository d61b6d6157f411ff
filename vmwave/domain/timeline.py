"""A wave's timeline as an SVG picture: one row per VM, one bar per step, failures outlined in red.

A person reads a Gantt chart faster than a table: which VMs waited, which step
took the time, where the wave failed. Made from the ledger's rows as
``Ledger.by_vm`` returns them (ISO times); no drawing library, only text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from vmwave.domain.steps import PIPELINE, ROLLBACK

COLOURS = dict(
    zip((*PIPELINE, ROLLBACK), ("#4e79a7", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f", "#e15759"))
)
HOOK = "#bab0ac"  # the plan's hooks, grey: around the steps, not one of them
LABEL, WIDTH, ROW, TOP = 190, 760, 18, 34  # pixels: names column, bars area, row height, legend band


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def timeline_svg(entries: list[dict[str, Any]], now: datetime, title: str) -> str:
    """The picture of ``entries`` (per VM: its name and steps with started_at, finished_at, status)."""
    bars = [
        (row, step, _at(step["started_at"]), _at(step["finished_at"]) or now)
        for row, entry in enumerate(entries)
        for step in entry["steps"]
        if step["started_at"]
    ]
    start = min((s for _, _, s, _ in bars), default=now)
    span = max(1.0, max(((e - start).total_seconds() for _, _, _, e in bars), default=1.0))
    scale = WIDTH / span
    height = TOP + ROW * len(entries) + 24
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL + WIDTH + 10}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="13" font-weight="bold">{escape(title)}</text>',
    ]
    for n, (step, colour) in enumerate(COLOURS.items()):
        out.append(
            f'<rect x="{LABEL + n * 95}" y="20" width="10" height="10" fill="{colour}"/>'
            f'<text x="{LABEL + n * 95 + 13}" y="29">{escape(step)}</text>'
        )
    for row, entry in enumerate(entries):
        out.append(f'<text x="4" y="{TOP + row * ROW + 13}">{escape(entry["vm"][:30])}</text>')
    for row, step, began, ended in bars:
        x, width = LABEL + (began - start).total_seconds() * scale, max(1.0, (ended - began).total_seconds() * scale)
        outline = ' stroke="#d62728" stroke-width="2"' if step["status"] == "failed" else ""
        out.append(
            f'<rect x="{x:.1f}" y="{TOP + row * ROW + 2}" width="{width:.1f}" height="{ROW - 4}" '
            f'fill="{COLOURS.get(step["step"], HOOK)}"{outline}>'
            f"<title>{escape(step['step'])}: {escape(step['status'])}, {(ended - began).total_seconds():.1f} s"
            f"</title></rect>"
        )
    axis = TOP + ROW * len(entries) + 14
    for tick in range(5):
        seconds = span * tick / 4
        out.append(
            f'<text x="{LABEL + seconds * scale:.0f}" y="{axis}" text-anchor="middle">{seconds / 60:.1f} min</text>'
        )
    return "\n".join([*out, "</svg>", ""])
