"""`vmwave rehearse`: a whole estate on the lab through the deployment and a process worker, failures planted as the
seed met them, and the estate's results table; the calendar and the planted failures on their own first."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from helpers import REPO, VMWAVE
from vmwave.domain.estate_report import cost_lines, markdown, migrated_svg, results, summary
from vmwave.domain.plan import make_plan, parse_plan
from vmwave.domain.rehearsal import MIN_WINDOW, SEED_FAILURES, clock_ratio, compressed, parse_failures, planted, starts
from vmwave.domain.records import Disk, Nic, SourceVM
from vmwave.domain.rules_file import parse_rules
from vmwave.domain.classes import DEFAULT_RULES
from vmwave.errors import InputError
from vmwave.plugins import for_planning

DATA = REPO / "tests" / "data"


def estate_plan(n: int = 40, schedule: bool = True):
    now = datetime.now(timezone.utc)
    rules = yaml.safe_load(DEFAULT_RULES)
    if schedule:
        rules["schedule"] = {"start": (now + timedelta(days=2)).isoformat(), "every": "7d", "length": "6h"}
    vms = [
        SourceVM(
            name=f"app-{i:03d}",
            moref=f"vm-{i + 100}",
            instance_uuid=f"uuid-{i}",
            host=f"esx{i % 4}",
            guest_id="rhel8_64Guest",
            guest_family="linux",
            power_state="poweredOn",
            tools="running",
            cbt=i % 3 == 0,
            disks=(Disk(1, "disk0", f"[ds] app-{i}/app-{i}.vmdk", "ds", 1 << 30, "pvscsi", 0, 0),),
            nics=(Nic(1, "nic0", f"00:50:56:00:00:{i:02x}", "vmxnet3", "pg", 100),),
            attributes={"vmwave.convert": "virt-v2v" if i % 2 else "copy"},
        )
        for i in range(n)
    ]
    return now, parse_plan(make_plan(vms, parse_rules(rules, "rules"), None, "test", **for_planning()), "plan")


def test_the_clock_compresses_the_calendar_in_order_and_proportion():
    assert clock_ratio("1h=1s") == 3600 and clock_ratio("1d=2s") == 43200
    for wrong in ("1s=1h", "fast", "0h=1s", "1h=1"):
        with pytest.raises(InputError):
            clock_ratio(wrong)
    now, plan = estate_plan()
    windows = [w for w in plan.waves if w.window]
    assert windows
    fast = compressed(plan, now, 3600)
    for real, rehearsed in zip(plan.waves, fast.waves):
        if real.window:
            assert rehearsed.window.start - now == pytest.approx(
                (real.window.start - now) / 3600, abs=timedelta(seconds=1)
            )
            assert (rehearsed.window.end - rehearsed.window.start) == max(
                (real.window.end - real.window.start) / 3600, MIN_WINDOW
            )
    order = [s.wave for s in starts(fast, now) if fast.wave(s.wave).window and not fast.wave(s.wave).warm]
    assert order == sorted(order, key=lambda w: fast.wave(w).window.start)
    assert all(s.at >= now for s in starts(fast, now))


def test_failures_are_planted_where_they_can_happen_the_same_every_time():
    now, plan = estate_plan(400, schedule=False)
    chosen = planted(plan, parse_failures(SEED_FAILURES, "seed"))
    assert sorted(chosen.values()).count("guest-agent-not-connected") == 1  # 0.25% of 400
    assert chosen == planted(plan, parse_failures(SEED_FAILURES, "seed"))
    converted = planted(plan, parse_failures({"conversion-failed": 10, "timed-out": ["app-001"]}, "f"))
    entries = {vm.name: vm for wave in plan.waves for vm in wave.vms}
    assert converted["app-001"] == "timed-out"
    assert all(entries[name].convert == "virt-v2v" for name, cause in converted.items() if cause == "conversion-failed")
    with pytest.raises(InputError, match="not a VM of the plan"):
        planted(plan, parse_failures({"timed-out": ["nope"]}, "f"))
    with pytest.raises(InputError, match="not a count, a share or a list"):
        parse_failures({"timed-out": "lots"}, "f.yaml")


def test_the_estate_results_count_every_vm_once_with_its_cause():
    _, plan = estate_plan(6, schedule=False)
    wave = plan.waves[0]
    ok = [
        {
            "step": s,
            "status": "succeeded",
            "cause": "",
            "attempts": 1,
            "detail": {},
            "started_at": None,
            "finished_at": None,
        }
        for s in ("snapshot", "cdi-import", "convert", "network-attach", "boot", "smoke-test")
    ]
    agent = {
        "step": "guest-agent",
        "status": "succeeded",
        "cause": "",
        "attempts": 2,
        "detail": {"downtime_seconds": 12.5},
        "started_at": None,
        "finished_at": None,
    }
    failed = {**agent, "status": "failed", "cause": "guest-agent-not-connected", "detail": {}}
    entries = [
        {"wave": wave.id, "uuid": wave.vms[0].uuid, "steps": ok + [agent]},
        {"wave": wave.id, "uuid": wave.vms[1].uuid, "steps": ok[:5] + [failed]},
    ]
    found = results(plan, entries, {wave.vms[0].target: "uid-0"}, {wave.vms[1].name: "guest-agent-not-connected"})
    assert len(found) == sum(len(w.vms) for w in plan.waves)
    first, second = found[0], found[1]
    assert (first.state, first.uid, first.downtime_seconds, first.attempts["guest-agent"]) == (
        "succeeded",
        "uid-0",
        12.5,
        2,
    )
    assert (second.state, second.cause, second.injected) == ("failed",) + ("guest-agent-not-connected",) * 2
    assert "qemu-guest-agent" in second.fix
    total = summary(found, 10.0, 3600)
    assert (total.succeeded, total.injected, total.attributed) == (1, 1, 1)
    report = markdown(
        found,
        total,
        [],
        "t.svg",
        incidents=["12 s: worker rehearsal-1 ended (signal 9); started again"],
        migrated="m.svg",
        cost=cost_lines([("task runs per second", "41.5")], {"worker": (3, 180.4, 12.3)}),
    )
    assert "## Interruptions" in report and "- 12 s: worker rehearsal-1 ended \\(signal 9\\); started again" in report
    assert "![VMs migrated over time, as Prometheus scraped them](m.svg)" in report
    assert "| task runs per second | 41.5 |" in report and "| worker | 3 | 180 MiB | 12 s |" in report


def test_the_migrated_picture_follows_the_scraped_samples():
    picture = migrated_svg([(100.0, 0.0), (110.0, 5.0), (130.0, 10.0)], 10, 86400.0, "10 of 10 VMs migrated")
    line = picture.split('<polyline points="')[1].split('"')[0].split()
    assert line[0] == "50.0,230.0" and line[-1] == "770.0,30.0"  # from none at the start to all at the end
    assert "30 s of rehearsal, 30.0 real days" in picture
    assert "no samples" in migrated_svg([], 10, 1.0, "t")


@pytest.mark.lab
@pytest.mark.prefect
def test_a_rehearsal_runs_every_wave_and_reports_the_estate(tmp_path):
    now = datetime.now(timezone.utc)
    rules = {
        **yaml.safe_load(DEFAULT_RULES),
        "schedule": {"start": (now + timedelta(days=1)).isoformat(), "every": "7d", "length": "6h"},
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "failures.yaml").write_text("guest-agent-not-connected: 1\nsmoke-check-failed: 1\ntimed-out: 1\n")
    out = tmp_path / "rehearsal"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VMWAVE_", "PREFECT_"))},
        "VMWAVE_TIMEOUTS": "agent=15,import=20,boot=120",
    }
    argv = [
        VMWAVE,
        "rehearse",
        "--estate",
        str(DATA / "rehearsal-estate.yaml"),
        "--maps",
        str(DATA / "rehearsal.maps.yaml"),
        "--rules",
        str(tmp_path / "rules.yaml"),
        "--failures",
        str(tmp_path / "failures.yaml"),
        "--clock",
        "1d=1s",
        "--out",
        str(out),
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    figures = dict(pair.split("=") for pair in done.stdout.strip().splitlines()[-1].split())
    assert (figures["vms"], figures["succeeded"], figures["injected"], figures["attributed"]) == ("12", "9", "3", "3")
    records = json.loads((out / "estate.json").read_text())
    assert len(records) == 12 and len({r["name"] for r in records}) == 12
    for record in records:
        if record["injected"]:
            assert (record["state"], record["cause"]) == ("failed", record["injected"]), record
            assert record["fix"]
        else:
            assert record["state"] == "succeeded" and record["uid"], record
    assert len({r["uid"] for r in records if r["uid"]}) == 9  # one VirtualMachine per source, none twice
    report = (out / "estate-report.md").read_text()
    assert "**9 of 12 VMs migrated (75.00%)**" in report and "| guest-agent-not-connected | 1 | 1 |" in report
    assert (out / "estate-timeline.svg").read_text().startswith("<svg")
    assert set(yaml.safe_load((out / "lab" / "faults.json").read_text()).values()) == {
        "agent-never",
        "unreachable",
        "import-stalls",
    }


def test_a_rehearsal_lab_has_room_for_every_vm_of_the_estate():
    from vmwave_lab import estate as estates
    from vmwave_lab.lab import with_room

    seed = estates.load(str(REPO / "examples" / "estate-2000.yaml"))
    nodes = with_room(seed["nodes"], seed["vms"])
    assert nodes[: len(seed["nodes"])] == seed["nodes"]  # the estate's own, with their hugepages and CPU manager
    assert sum(n["cpu"] for n in nodes) >= sum(vm["cpus"] for vm in seed["vms"])
    assert sum(n["memory_gi"] for n in nodes) * 1024 >= sum(vm["memory_mb"] for vm in seed["vms"])
    ready_for_p4 = [n for n in nodes if n["labels"].get("cpumanager") == "true"]  # any VM may be given hugepages
    assert sum(n["hugepages_1gi"] for n in ready_for_p4) * 1024 >= sum(vm["memory_mb"] for vm in seed["vms"])
    assert sum(n["cpu"] for n in ready_for_p4) >= sum(vm["cpus"] for vm in seed["vms"])
    assert with_room(nodes, seed["vms"][:10]) == nodes  # room enough already: nothing added
