"""The wave's timeline picture: a row per VM, a bar per step in proportion to its time, failures outlined."""

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from vmwave.domain.timeline import COLOURS, timeline_svg

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)


def step(name, start_s, end_s, status="succeeded"):
    return {
        "step": name,
        "status": status,
        "started_at": (T0 + timedelta(seconds=start_s)).isoformat(),
        "finished_at": (T0 + timedelta(seconds=end_s)).isoformat() if end_s is not None else None,
    }


def test_each_vm_is_a_row_and_each_step_a_bar_as_long_as_it_took():
    entries = [
        {"vm": "web-01", "steps": [step("snapshot", 0, 10), step("cdi-import", 10, 310)]},
        {
            "vm": "db-01",
            "steps": [
                step("snapshot", 30, 40),
                step("cdi-import", 40, 100),
                step("guest-agent", 100, 160, "failed"),
                step("rollback", 160, 170),
            ],
        },
        {"vm": "app-03", "steps": [step("snapshot", 50, None, "running")]},
    ]  # still running: up to now
    svg = ET.fromstring(timeline_svg(entries, T0 + timedelta(seconds=400), "wave w001: 1 of 3 VMs succeeded"))
    names = [t.text for t in svg.iter(f"{SVG}text")]
    assert names[0] == "wave w001: 1 of 3 VMs succeeded" and {"web-01", "db-01", "app-03"} <= set(names)
    assert "6.7 min" in names  # the axis spans the wave: 400 s
    bars = [r for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 7
    width = {r.find(f"{SVG}title").text: float(r.get("width")) for r in bars}
    assert width["cdi-import: succeeded, 300.0 s"] == 5 * width["cdi-import: succeeded, 60.0 s"]
    assert width["snapshot: running, 350.0 s"] > width["cdi-import: succeeded, 300.0 s"]
    failed = [r for r in bars if r.get("stroke")]
    assert [r.find(f"{SVG}title").text for r in failed] == ["guest-agent: failed, 60.0 s"]
    assert {r.get("fill") for r in bars} <= set(COLOURS.values())


def test_a_wave_with_nothing_run_yet_is_still_a_picture():
    svg = ET.fromstring(timeline_svg([{"vm": "web-01", "steps": []}], T0, "wave w002: 0 of 1 VMs succeeded"))
    assert svg.tag == f"{SVG}svg" and "web-01" in [t.text for t in svg.iter(f"{SVG}text")]
