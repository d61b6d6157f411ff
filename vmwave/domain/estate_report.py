"""The whole estate's results, as the seed reported its 2000 VMs: migrated of total, per class, failures by cause
with their fix, downtime per class, precopy, throughput, and a picture of the waves along the calendar.

Made from the plan and the ledger (``Ledger.by_vm``), so a rehearsal and a
real migration read the same way; pure, so 2000 VMs take milliseconds.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from vmwave.domain.diagnosis import cause as known_cause
from vmwave.domain.names import markdown_cell
from vmwave.domain.plan_file import PlanFile
from vmwave.domain.steps import GUEST_AGENT, PRECOPY, outcome


@dataclass(frozen=True)
class VMResult:
    """One VM's end, one line of ``estate.json``."""

    name: str
    wave: str
    cls: str
    state: str  # succeeded | failed | rolled_back | running | pending (never started)
    cause: str = ""
    fix: str = ""
    injected: str = ""  # the cause a rehearsal gave it on purpose
    attempts: dict[str, int] = field(default_factory=dict)
    downtime_seconds: float | None = None
    precopy_rounds: int = 0
    precopy_bytes: int = 0
    target: str = ""
    uid: str = ""


def results(
    plan: PlanFile, entries: list[dict[str, Any]], uids: dict[str, str], injected: dict[str, str]
) -> list[VMResult]:
    """Each VM of the plan, as the ledger ends it; ``uids`` by target name, ``injected`` cause by VM name."""
    by_uuid = {(e["wave"], e["uuid"]): e for e in entries}
    found = []
    for wave in plan.waves:
        for vm in wave.vms:
            steps = (by_uuid.get((wave.id, vm.uuid)) or {}).get("steps", [])
            rows = [{"step": s["step"], "status": s["status"], "cause": s["cause"]} for s in steps]
            failed = next((s for s in steps if s["status"] == "failed"), None)
            agent = next((s for s in steps if s["step"] == GUEST_AGENT and s["status"] == "succeeded"), {})
            precopy = (next((s for s in steps if s["step"] == PRECOPY), {}).get("detail") or {}).get("rounds", [])
            found.append(
                VMResult(
                    name=vm.name,
                    wave=wave.id,
                    cls=vm.cls or wave.cls,
                    state=outcome(rows).state,
                    cause=failed["cause"] if failed else "",
                    fix=known_cause(failed["cause"]).fix if failed else "",
                    injected=injected.get(vm.name, ""),
                    attempts={s["step"]: s["attempts"] for s in steps},
                    downtime_seconds=(agent.get("detail") or {}).get("downtime_seconds"),
                    precopy_rounds=len(precopy),
                    precopy_bytes=sum(r.get("bytes", 0) for r in precopy),
                    target=vm.target,
                    uid=uids.get(vm.target, ""),
                )
            )
    return found


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


@dataclass(frozen=True)
class Summary:
    vms: int
    succeeded: int
    failed: int
    injected: int
    attributed: int  # injected failures that ended failed with the cause they were given
    wall_seconds: float
    ratio: float  # real seconds per rehearsal second

    @property
    def rate(self) -> float:
        return 100.0 * self.succeeded / max(self.vms, 1)

    @property
    def per_hour(self) -> float:
        return self.succeeded / max(self.wall_seconds, 1e-9) * 3600

    @property
    def real_days(self) -> float:
        """The rehearsal's length on the real calendar."""
        return self.wall_seconds * self.ratio / 86400


def summary(found: list[VMResult], wall_seconds: float, ratio: float) -> Summary:
    return Summary(
        vms=len(found),
        succeeded=sum(r.state == "succeeded" for r in found),
        failed=sum(r.state in ("failed", "rolled_back") for r in found),
        injected=sum(bool(r.injected) for r in found),
        attributed=sum(bool(r.injected) and r.state == "failed" and r.cause == r.injected for r in found),
        wall_seconds=wall_seconds,
        ratio=ratio,
    )


def markdown(
    found: list[VMResult],
    total: Summary,
    wave_reports: list[str],
    picture: str,
    stopped: list[tuple[str, str, str]] = (),
    incidents: list[str] = (),
    migrated: str = "",
    cost: list[str] = (),
) -> str:
    """The seed's results table for this estate, the waves whose runs did not complete (wave, state, why), what
    happened to the rehearsal's processes unasked, its pictures (``migrated``: VMs migrated over time, when
    Prometheus watched), where each wave's own report is, and the ``cost`` lines."""
    lines = [
        "# Estate rehearsal",
        "",
        f"**{total.succeeded} of {total.vms} VMs migrated ({total.rate:.2f}%)**, {total.failed} failed "
        f"({total.injected} on purpose, {total.attributed} of them attributed to the cause they were given), in "
        f"{total.wall_seconds:.0f} s of rehearsal: {total.per_hour:.0f} VMs per hour, "
        f"{total.real_days:.1f} days of the real calendar.",
        "",
        "## Per class",
        "",
        "| class | VMs | migrated | rate | downtime p50 | p95 | max |",
        "|---|---|---|---|---|---|---|",
    ]
    by_class: dict[str, list[VMResult]] = defaultdict(list)
    for r in found:
        by_class[r.cls].append(r)
    for cls in sorted(by_class):
        rows = by_class[cls]
        ok = sum(r.state == "succeeded" for r in rows)
        down = [r.downtime_seconds for r in rows if r.downtime_seconds is not None]
        figures = (
            (f"{_percentile(down, 0.5):.1f}s", f"{_percentile(down, 0.95):.1f}s", f"{max(down):.1f}s")
            if down
            else ("", "", "")
        )
        lines.append(f"| {cls} | {len(rows)} | {ok} | {100.0 * ok / len(rows):.2f}% | " + " | ".join(figures) + " |")
    failures = Counter(r.cause for r in found if r.cause)
    lines += ["", "## Failures by cause", ""]
    if failures:
        lines += ["| cause | VMs | on purpose | fix |", "|---|---|---|---|"]
        for cause_id, count in failures.most_common():
            planted = sum(r.cause == cause_id and bool(r.injected) for r in found)
            lines.append(
                f"| {markdown_cell(cause_id)} | {count} | {planted} | {markdown_cell(known_cause(cause_id).fix)} |"
            )
    else:
        lines.append("None.")
    if stopped:
        lines += ["", "## Waves whose runs did not complete", "", "| wave | run | why |", "|---|---|---|"]
        lines += [
            f"| {markdown_cell(w)} | {markdown_cell(state)} | {markdown_cell(why)} |" for w, state, why in stopped
        ]
    if incidents:
        lines += ["", "## Interruptions", "", "What ended unasked during the rehearsal, and what it did about it:", ""]
        lines += [f"- {markdown_cell(what)}" for what in incidents]
    warm = [r for r in found if r.precopy_rounds]
    lines += [
        "",
        "## Precopy",
        "",
        f"{len(warm)} VMs moved warm: {sum(r.precopy_rounds for r in warm)} rounds, "
        f"{sum(r.precopy_bytes for r in warm) / 2**20:.1f} MiB copied while their sources ran.",
        "",
        "## Waves",
        "",
        f"![the waves along the calendar]({picture})",
        "",
    ]
    if migrated:
        lines += [f"![VMs migrated over time, as Prometheus scraped them]({migrated})", ""]
    lines += [f"- [{name}]({name})" for name in wave_reports]
    lines += list(cost)
    return "\n".join(lines) + "\n"


def records_json(found: list[VMResult]) -> list[dict[str, Any]]:
    return [{**asdict(r), "class": r.cls} for r in found]


def waves_svg(found: list[VMResult], spans: dict[str, tuple[datetime, datetime]], title: str) -> str:
    """Each wave as a bar along the rehearsal's clock, its VMs done and failed written beside it."""
    label, width, row, top = 70, 720, 16, 30
    start = min((s for s, _ in spans.values()), default=None)
    length = max(((e - start).total_seconds() for _, e in spans.values()), default=1.0) if start else 1.0
    scale = width / max(length, 1.0)
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in found:
        counts[r.wave][r.state] += 1
    waves = sorted(counts)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label + width + 150}" height="{top + row * len(waves) + 10}" '
        f'font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="14" font-weight="bold">{escape(title)}</text>',
    ]
    for n, wave in enumerate(waves):
        y = top + n * row
        out.append(f'<text x="4" y="{y + 11}">{escape(wave)}</text>')
        if wave in spans and start:
            s, e = spans[wave]
            x = label + (s - start).total_seconds() * scale
            colour = "#e15759" if counts[wave]["failed"] else "#59a14f"
            out.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{max(2.0, (e - s).total_seconds() * scale):.1f}" '
                f'height="{row - 4}" fill="{colour}"/>'
            )
        out.append(
            f'<text x="{label + width + 6}" y="{y + 11}">{counts[wave]["succeeded"]} done, '
            f"{counts[wave]['failed'] + counts[wave]['rolled_back']} failed</text>"
        )
    return "\n".join(out + ["</svg>"]) + "\n"


def migrated_svg(points: list[tuple[float, float]], total: int, ratio: float, title: str) -> str:
    """VMs migrated over the rehearsal, as Prometheus recorded the exporter's ``vmwave_vms``: a line from the first
    sample, its axis in rehearsal seconds and, below, the real calendar's days they stand for."""
    left, width, height, top = 50, 720, 200, 30
    if not points:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width}" height="60" font-family="sans-serif" '
            f'font-size="11"><text x="4" y="20">{escape(title)}: no samples</text></svg>\n'
        )
    start, length = points[0][0], max(points[-1][0] - points[0][0], 1.0)
    x = lambda t: left + (t - start) / length * width  # noqa: E731
    y = lambda v: top + height - v / max(total, 1) * height  # noqa: E731
    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" height="{top + height + 40}" '
        f'font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="14" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + height}" x2="{left + width}" y2="{top + height}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + height}" stroke="#999"/>',
        f'<text x="4" y="{top + 4}">{total}</text><text x="4" y="{top + height}">0</text>',
        f'<polyline points="{line}" fill="none" stroke="#4e79a7" stroke-width="2"/>',
        f'<text x="{left}" y="{top + height + 16}">0 s</text>',
        f'<text x="{left + width - 160}" y="{top + height + 16}">{length:.0f} s of rehearsal, '
        f"{length * ratio / 86400:.1f} real days</text>",
        "</svg>",
    ]
    return "\n".join(out) + "\n"


def cost_lines(figures: list[tuple[str, str]], usage: dict[str, tuple[int, float, float]]) -> list[str]:
    """The rehearsal's own cost at this estate's scale: throughput and sizes, and per kind of process its largest
    peak memory and the CPU time they used."""
    lines = ["", "## Cost at scale", "", "| figure | value |", "|---|---|"]
    lines += [f"| {markdown_cell(what)} | {markdown_cell(value)} |" for what, value in figures]
    if usage:
        lines += ["", "| process | seen | largest peak memory | CPU time |", "|---|---|---|---|"]
        lines += [
            f"| {markdown_cell(role)} | {count} | {peak:.0f} MiB | {cpu:.0f} s |"
            for role, (count, peak, cpu) in sorted(usage.items(), key=lambda item: -item[1][2])
        ]
    return lines
