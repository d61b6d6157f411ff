"""`vmwave rehearse`: every wave of an estate on the lab, its calendar compressed, through the deployment and the
process workers a real migration uses; it ends in the seed's results table for that estate.

The rehearsal's folder (``--out``) is its own world: its lab, its Prefect
server's home, its ledger, its plan and its reports. A rerun into the same
folder starts it afresh, so nothing an earlier run left meets a new ledger.
With more than one worker, the Prefect server and the ledger run on a
PostgreSQL of the rehearsal's own, as workers on several machines would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import httpx
import typer

from vmwave.cli.common import MAPS, app, err, saved_inventory, working
from vmwave.errors import InputError, VmwaveError

if TYPE_CHECKING:
    from vmwave_lab.servers import PrefectServer, Prometheus


# A Prefect server for thousands of VMs records task runs and events in batches, not one transaction each: measured
# on benchmarks/wave_50.py, server CPU 23.0 s -> 16.0 s and the wave 27.8 s -> 19.7 s (deployments/README.md).
SERVER_AT_SCALE = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "200",
}
# The rehearsal's own server is gone when it ends, and the events it would keep with it: it records task runs and
# flow runs (what the UI and the report read) but not each event as well, which cost a third of its CPU per task
# run (4.9 -> 3.3 s for 550 task runs on PostgreSQL).
REHEARSAL_SERVER = {**SERVER_AT_SCALE, "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false"}
POOL, DEPLOYMENT = "rehearsal", "rehearsal"
SCRAPE_INTERVAL = "10s"  # a scrape reads the whole ledger: 0.6 s at 2000 VMs, every 2 s took a third of a core
APPROVAL_NOTE = "approved by vmwave rehearse"


def lab_timeouts(data_mb: int) -> str:
    """A lab VM answers in seconds, so a stuck one fails within a minute: at 2000 VMs the slowest import of 1 MiB
    disks took 4.7 s; each MiB more of a disk gives its import a second more."""
    return f"agent=60,boot=120,import={60 + data_mb},convert=600"


@app.command()
def rehearse(
    out_dir: Path = typer.Option(..., "--out", help="the rehearsal's folder: its lab, servers' data and reports"),
    inventory: Optional[Path] = typer.Option(
        None, "--inventory", help="what `vmwave inventory` read of the real vCenter: the estate to rehearse"
    ),
    estate: Optional[Path] = typer.Option(
        None, "--estate", help="a lab estate file instead (e.g. examples/estate-2000.yaml)"
    ),
    plan_file: Optional[Path] = typer.Option(
        None,
        "--plan",
        help="the plan to rehearse (made for the real vCenter: its VMs are found by UUID); default: plan the lab",
    ),
    rules: Optional[Path] = typer.Option(
        None, "--rules", help="without --plan: the rules to plan with (default: the built-in ones)"
    ),
    maps: Optional[Path] = MAPS,
    workers: int = typer.Option(1, "--workers", min=1, max=16, help="process workers taking the waves' runs"),
    failures: Optional[Path] = typer.Option(
        None,
        "--failures",
        help="YAML: per cause (guest-agent-not-connected, "
        "smoke-check-failed, timed-out, conversion-failed) a "
        "count, a share (0.25%) or VM names; default: "
        "the seed's 13 of 2000",
    ),
    clock: str = typer.Option("1h=1s", "--clock", help="REAL=REHEARSAL: how much of the calendar a second holds"),
    in_flight: int = typer.Option(10, "--in-flight", min=1, max=500, help="VMs in flight per wave run"),
    data_mb: int = typer.Option(1, "--data-mb", min=0, max=1024, help="MiB of real bytes in each disk"),
) -> None:
    """Rehearse the whole migration on the lab and write DIR/estate-report.md and DIR/estate.json."""
    from vmwave.adapters.files import load_maps, load_plan, load_policy
    from vmwave.cli.lab import lab_errors
    from vmwave.adapters.documents import read_yaml
    from vmwave.cli.crew import Usage
    from vmwave.domain.rehearsal import SEED_FAILURES, clock_ratio, parse_failures
    from vmwave.settings import Settings
    from vmwave_lab import estate as estates

    if (inventory is None) == (estate is None):
        raise VmwaveError(
            "give the estate to rehearse: --inventory FILE or --estate FILE, one of them",
            "`vmwave inventory --out inv.json` against the real vCenter writes the first",
        )
    if plan_file and rules:
        raise VmwaveError("--plan and --rules both given", "a plan already has its classes: drop --rules")
    ratio = clock_ratio(clock)  # every input is read and checked before anything changes
    settings = Settings.load()
    limit = settings.max_file_bytes
    records = [vm.to_dict() for vm in saved_inventory(inventory, settings)[1]] if inventory else None
    if estate:
        with lab_errors():
            estates.load(str(estate))
    given = load_plan(plan_file, limit) if plan_file else None
    policy = None if given else load_policy(rules, limit=limit)
    if maps:
        load_maps(maps, limit)
    planned_failures = parse_failures(
        read_yaml(failures, "failures", limit) if failures else SEED_FAILURES, str(failures or "the seed's failures")
    )
    out_dir = out_dir.resolve()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: its lab, servers and workers stop too
    _afresh(out_dir)
    began = time.monotonic()
    with (
        Usage(os.getpid()) as usage,
        _lab(out_dir / "lab", estate, records, data_mb, maps) as lab_env,
        _servers(out_dir, workers) as (server, ledger),
    ):
        env = {
            **os.environ,
            **lab_env,
            "VMWAVE_LEDGER": ledger,
            "PREFECT_API_URL": server.api,
            "VMWAVE_WORKDIR": str(out_dir / "work"),
            "VMWAVE_TIMEOUTS": os.environ.get("VMWAVE_TIMEOUTS", lab_timeouts(data_mb)),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            "PREFECT_LOGGING_COLORS": "false",
        }  # the workers' logs are files: no terminal colours to work out
        plan, plan_path = _plan(out_dir, given, policy, env, ratio)
        injected = _plant(plan, planned_failures, out_dir / "lab")
        with _watched(out_dir, env) as prometheus:
            run = _run(plan, plan_path, out_dir, env, server, workers, in_flight)
            watched = _scraped(prometheus, run)
        figures = _report(
            plan, run, watched, injected, out_dir, env, ratio, time.monotonic() - began, workers, usage.by_role()
        )
    err.print(f"the rehearsal's report: {out_dir / 'estate-report.md'}")
    print(figures["line"])
    if figures["unplanned_failures"]:
        raise typer.Exit(1)


def _afresh(out_dir: Path) -> None:
    """An earlier rehearsal's lab, servers' data and ledger in this folder are gone; its reports are replaced."""
    from vmwave_lab import lab

    out_dir.mkdir(parents=True, exist_ok=True)
    lab.down(out_dir / "lab")
    for name in ("lab", "prefect", "work", "waves", "ledger.db"):
        target = out_dir / name
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)


@contextlib.contextmanager
def _lab(
    state: Path, estate: Path | None, records: list[dict] | None, data_mb: int, maps: Path | None
) -> Iterator[dict[str, str]]:
    """The lab for the estate, with the maps' StorageClasses and images (the estate's own or generated ones when
    none are given)."""
    from vmwave.cli.lab import lab_errors
    from vmwave_lab import estate as estates
    from vmwave_lab import lab, vcenter

    with lab_errors():
        total = len(records) if records is not None else len(estates.load(str(estate))["vms"])
        with working("building the lab vCenter (first run only, ~20 s)"):
            vcenter.binary()
        with working("seeding the lab: VMs", total=total) as progress:
            settings = lab.up(
                estate,
                None,
                state,
                progress,
                inventory=records,
                data_mb=data_mb,
                maps_file=maps.resolve() if maps else None,
                room_for_all=True,
            )
    try:
        yield settings
    finally:
        lab.down(state)


@contextlib.contextmanager
def _servers(out_dir: Path, workers: int) -> Iterator[tuple[PrefectServer, str]]:
    """(the Prefect server, the ledger's URL): on SQLite files for one worker, on a PostgreSQL of their own for
    more."""
    from vmwave_lab.servers import postgres, prefect_server_on

    with (
        working(f"starting the Prefect server{' on PostgreSQL' if workers > 1 else ''}"),
        contextlib.ExitStack() as stack,
    ):
        if workers > 1:
            pg = stack.enter_context(postgres())
            pg.create("prefect")
            pg.create("ledger")
            database, ledger = pg.url("asyncpg", "prefect"), pg.url("psycopg", "ledger")
        else:
            database = f"sqlite+aiosqlite:///{out_dir / 'prefect' / 'prefect.db'}"
            ledger = f"sqlite:///{out_dir / 'ledger.db'}"
        yield stack.enter_context(prefect_server_on(database, out_dir / "prefect", REHEARSAL_SERVER)), ledger


def _plan(out_dir: Path, given, policy, env: dict[str, str], ratio: float):
    """The plan the rehearsal runs, on its clock, written to DIR/plan.yaml: the given one with each VM found in the
    lab by its UUID, or the lab's estate planned with the rules."""
    from vmwave.adapters.files import load_maps, write_plan
    from vmwave.adapters.vsphere import inventory as read_inventory
    from vmwave.domain.plan import make_plan, parse_plan
    from vmwave.domain.rehearsal import compressed
    from vmwave.plugins import for_planning
    from vmwave.settings import Settings

    settings = Settings.load(env=env)
    records = read_inventory(settings.need_vcenter())
    limit = settings.max_file_bytes
    if given:
        doc = given.model_dump(mode="json", by_alias=True, exclude_none=True)
        by_uuid = {r.instance_uuid: r for r in records}
        for index, wave in enumerate(doc["waves"]):
            for n, vm in enumerate(wave["vms"]):
                if vm.get("uuid") not in by_uuid:
                    raise InputError(
                        "--plan",
                        f"waves[{index}].vms[{n}].uuid",
                        f"{vm['name']} ({vm.get('uuid') or 'no uuid'}) is not in the rehearsed inventory",
                        "rehearse the inventory this plan was made from",
                    )
                vm["moref"] = by_uuid[vm["uuid"]].moref
        plan = parse_plan(doc, "--plan")
    else:
        doc = make_plan(
            records, policy, load_maps(settings.maps, limit), "the lab", **for_planning(settings.disable_plugins)
        )
        plan = parse_plan(doc, "the lab's plan")
    plan = compressed(plan, datetime.now(timezone.utc), ratio)
    path = out_dir / "plan.yaml"
    write_plan(plan.model_dump(mode="json", by_alias=True, exclude_none=True), path)
    return plan, path


def _plant(plan, failures, lab_state: Path) -> dict[str, str]:
    """The failures on purpose, told to the lab (its faults.json, by source UUID); the cause by VM name."""
    from vmwave.adapters.files import write_text_atomic
    from vmwave.domain.rehearsal import LAB_FAULTS, planted

    chosen = planted(plan, failures)
    uuids = {vm.name: vm.uuid for wave in plan.waves for vm in wave.vms}
    write_text_atomic(
        lab_state / "faults.json", json.dumps({uuids[name]: LAB_FAULTS[cause] for name, cause in chosen.items()})
    )
    return chosen


@dataclass(frozen=True)
class Ran:
    """What running the waves gave: their runs as they ended, how long the calendar held the last wave back
    (seconds), what died and was started again, and when (epoch seconds) the runs began and ended."""

    runs: list
    calendar: float
    incidents: list[str]
    began: float
    ended: float
    task_runs: int


def _run(
    plan, plan_path: Path, out_dir: Path, env: dict[str, str], server: PrefectServer, workers: int, in_flight: int
) -> Ran:
    """Every wave's run through the deployment, taken by the workers when due, manual gates approved, the workers
    and server kept running."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from vmwave.adapters.prefect_api.wave_runs import start_runs, watch
    from vmwave.cli.crew import Crew
    from vmwave.domain.rehearsal import span, starts
    from vmwave_flows.wave import migrate_wave
    from vmwave_lab.process import alive
    from vmwave_lab.servers import PREFECT

    now = datetime.now(timezone.utc)
    reports = out_dir / "waves"
    reports.mkdir(exist_ok=True)
    cold_windows = {w.id for w in plan.waves if w.window and not w.warm}
    launched = [
        (
            s.wave,
            s.at,
            {"report_dir": str(reports), "in_flight": in_flight, "ignore_window": s.wave in cold_windows},
        )  # the rehearsal's clock opened it
        for s in starts(plan, now)
    ]
    calendar = max((at - now).total_seconds() for _, at, _ in launched) if launched else 0.0
    began = time.time()
    with temporary_settings({PREFECT_API_URL: server.api}):
        subprocess.run(
            [PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        with Crew(
            server, POOL, workers, {**env, "VMWAVE_PLAN_DIR": str(out_dir)}, out_dir, out_dir / "workers"
        ) as crew:
            runs = start_runs(plan_path, launched, DEPLOYMENT, POOL, migrate_wave.parameters.model_dump(mode="json"))
            deadline = (
                time.monotonic() + span(plan, now).total_seconds() + 1800 + 5 * sum(len(w.vms) for w in plan.waves)
            )
            with working("waves finished", total=len(runs)) as progress:
                ended = watch(
                    runs,
                    deadline,
                    APPROVAL_NOTE,
                    lambda now_runs: progress(sum(r.done for r in now_runs)),
                    alive=alive,
                    note=crew.note,
                )
            task_runs = httpx.post(f"{server.api}/task_runs/count", json={}, timeout=120).json()
            return Ran(ended, calendar, crew.incidents, began, time.time(), int(task_runs))


@contextlib.contextmanager
def _watched(out_dir: Path, env: dict[str, str]) -> Iterator[Prometheus | None]:
    """`vmwave exporter` on the rehearsal's ledger and a real Prometheus scraping it, as a migration is watched;
    None where Prometheus is not installed (the report then says so)."""
    from vmwave_lab.servers import Prometheus, free_port

    if not shutil.which("prometheus"):
        yield None
        return
    port = free_port()
    with open(out_dir / "exporter.log", "w") as log:
        exporter = subprocess.Popen(
            [str(Path(sys.executable).parent / "vmwave"), "exporter", "--port", str(port), "--listen", "127.0.0.1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with Prometheus(out_dir / "prometheus", {"vmwave": f"127.0.0.1:{port}"}, SCRAPE_INTERVAL) as prometheus:
            yield prometheus
    finally:
        exporter.terminate()
        exporter.wait(30)


@dataclass(frozen=True)
class Scraped:
    """What Prometheus recorded: VMs migrated over time, and how long each scrape of the exporter took."""

    migrated: list[tuple[float, float]]
    scrape_seconds: list[float]


def _scraped(prometheus: Prometheus | None, ran: Ran) -> Scraped | None:
    if prometheus is None:
        return None
    step = max(1.0, (ran.ended - ran.began) / 400)
    return Scraped(
        prometheus.query_range('sum(vmwave_vms{state="succeeded"})', ran.began, ran.ended, step),
        [v for _, v in prometheus.query_range('scrape_duration_seconds{job="vmwave"}', ran.began, ran.ended, step)],
    )


def _report(
    plan,
    ran: Ran,
    scraped: Scraped | None,
    injected: dict[str, str],
    out_dir: Path,
    env: dict[str, str],
    ratio: float,
    wall: float,
    workers: int,
    usage: dict[str, tuple[int, float, float]],
) -> dict:
    """DIR/estate.json, DIR/estate-report.md and its pictures, from the ledger, the cluster and Prometheus."""
    from vmwave.adapters.files import write_text_atomic
    from vmwave.adapters.kubernetes import Cluster
    from vmwave.adapters.ledger import Ledger
    from vmwave.domain.estate_report import (
        cost_lines,
        markdown,
        migrated_svg,
        records_json,
        results,
        summary,
        waves_svg,
    )
    from vmwave.domain.manifests import MANAGED_BY
    from vmwave.settings import Settings

    settings = Settings.load(env=env)
    ledger = Ledger(settings.ledger)
    entries = ledger.by_vm()
    cluster = Cluster(settings.need_kubeconfig())
    uids = {
        vm["metadata"]["name"]: vm["metadata"]["uid"]
        for vm in cluster.find("kubevirt.io/v1", "VirtualMachine", None, MANAGED_BY)
    }
    found = results(plan, entries, uids, injected)
    total = summary(found, wall, ratio)
    spans = {}
    for entry in entries:
        times = [(s["started_at"], s["finished_at"] or s["started_at"]) for s in entry["steps"] if s["started_at"]]
        if times:
            first, last = min(t[0] for t in times), max(t[1] for t in times)
            old = spans.get(entry["wave"], (first, last))
            spans[entry["wave"]] = (min(old[0], first), max(old[1], last))
    title = f"{total.succeeded} of {total.vms} VMs migrated"
    picture = waves_svg(
        found, {w: (datetime.fromisoformat(a), datetime.fromisoformat(b)) for w, (a, b) in spans.items()}, title
    )
    write_text_atomic(out_dir / "estate-timeline.svg", picture)
    if scraped:
        write_text_atomic(out_dir / "estate-migrated.svg", migrated_svg(scraped.migrated, total.vms, ratio, title))
    seconds = max(ran.ended - ran.began, 1.0)
    scrapes = scraped.scrape_seconds if scraped else []
    ledger_mb = ledger.size_bytes() / 2**20
    peak = max((mib for _, mib, _ in usage.values()), default=0.0)
    figures = [
        ("task runs per second (the Prefect server, while the waves ran)", f"{ran.task_runs / seconds:.1f}"),
        ("task runs in all", str(ran.task_runs)),
        ("the ledger's size", f"{ledger_mb:.1f} MiB ({settings.ledger.split(':')[0]})"),
        (
            "a scrape of the exporter (mean, max)",
            f"{sum(scrapes) / len(scrapes):.3f} s, {max(scrapes):.3f} s"
            if scrapes
            else "not measured: Prometheus is not installed (apt-get install prometheus)",
        ),
        ("workers", str(workers)),
    ]
    reports = sorted(f"waves/{p.name}" for p in (out_dir / "waves").glob("wave-*-report.md"))
    stopped = [(r.wave, r.state, r.message) for r in ran.runs if r.state != "Completed"]
    write_text_atomic(
        out_dir / "estate-report.md",
        markdown(
            found,
            total,
            reports,
            "estate-timeline.svg",
            stopped,
            ran.incidents,
            "estate-migrated.svg" if scraped else "",
            cost_lines(figures, usage),
        ),
    )
    write_text_atomic(out_dir / "estate.json", json.dumps(records_json(found), indent=1))
    unplanned = sum(r.state != "succeeded" and not r.injected for r in found)
    line = (
        f"vms={total.vms} waves={len(plan.waves)} workers={workers} succeeded={total.succeeded} "
        f"injected={total.injected} attributed={total.attributed} wall_seconds={wall:.0f} "
        f"calendar_seconds={ran.calendar:.0f} runs_failed={sum(r.state != 'Completed' for r in ran.runs)} "
        f"task_runs_per_s={ran.task_runs / seconds:.1f} ledger_mb={ledger_mb:.1f} "
        f"scrape_s_max={max(scrapes, default=0):.3f} peak_rss_mb={peak:.0f}"
    )
    return {"line": line, "unplanned_failures": unplanned}
