"""A whole wave on its own lab: bounded, reported, rerun-safe, and undone on request."""

import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from helpers import VMWAVE, assert_shared_once_within_caps, share_a_wave
from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.ledger import Ledger
from vmwave.domain.build import credentials_name
from vmwave.settings import Settings

pytestmark = pytest.mark.prefect


def test_a_wave_runs_reports_and_rolls_back(prefect_server, wave_lab, wave_env, planned, tmp_path, secrets_stay_secret):
    """What `vmwave manifests` wrote is what `vmwave migrate` applied; a rerun redoes nothing; a rollback undoes it."""
    plan, doc, wave = planned
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}  # for commands beside this process
    written = tmp_path / "manifests"
    subprocess.run(
        [VMWAVE, "manifests", "--plan", str(plan), "--wave", wave["id"], "--out", str(written)],
        check=True,
        capture_output=True,
        env={**os.environ},
    )

    from vmwave_flows.wave import migrate_wave

    report = migrate_wave(str(plan), wave["id"], report_dir=str(tmp_path))
    assert report["succeeded"] == report["total"] == len(wave["vms"]), report["rows"]
    report_text = (tmp_path / f"wave-{wave['id']}-report.md").read_text()
    assert report_text.count("| succeeded |") == len(wave["vms"])
    assert f"![timeline of wave {wave['id']}](wave-{wave['id']}-timeline.svg)" in report_text  # the picture beside it
    picture = ET.parse(tmp_path / f"wave-{wave['id']}-timeline.svg").getroot()
    assert {vm["name"] for vm in wave["vms"]} <= {t.text for t in picture.iter("{http://www.w3.org/2000/svg}text")}
    cluster = Cluster(wave_lab["VMWAVE_KUBECONFIG"])
    assert_cluster_holds(cluster, written, Ledger(Settings.load().ledger).run_id)
    assert cluster.get("v1", "Secret", "vmwave", credentials_name(wave["id"])) is None  # gone with the wave
    vms = cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {"vmwave.io/wave": wave["id"]})
    assert len(vms) == len(wave["vms"])

    ledger = Ledger(Settings.load().ledger)
    attempts = [(e["vm"], s["step"], s["attempts"]) for e in ledger.by_vm(wave["id"]) for s in e["steps"]]
    again = migrate_wave(str(plan), wave["id"], report_dir=str(tmp_path))  # a rerun redoes nothing
    assert again["succeeded"] == again["total"]
    assert [(e["vm"], s["step"], s["attempts"]) for e in ledger.by_vm(wave["id"]) for s in e["steps"]] == attempts

    status = subprocess.run(
        [VMWAVE, "status", "--wave", wave["id"], "--json"], capture_output=True, text=True, check=True, env=env
    )
    assert len(json.loads(status.stdout)) == len(wave["vms"])
    secrets_stay_secret(wave_lab, [tmp_path / f"wave-{wave['id']}-report.md"])

    # The wave's Windows VM is now to be converted by virt-v2v, and no VirtIO drivers are configured:
    windows = next(vm for vm in wave["vms"] if vm["name"].startswith("win-"))
    windows["convert"] = "virt-v2v"
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    rows = ledger.rows(wave["id"])
    refused = subprocess.run(
        [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"]],
        capture_output=True,
        text=True,
        env={k: v for k, v in env.items() if k != "VMWAVE_VIRTIO_WIN"},
        cwd=tmp_path,
    )
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr  # a refusal is an answer, not a crash
    [message] = [line for line in refused.stderr.splitlines() if line.startswith("error:")]  # vmwave's one line
    assert message.startswith(f"error: wave {wave['id']} cannot start")
    assert f"{windows['name']} (virt-v2v) needs the VirtIO drivers for Windows" in message
    assert "VMWAVE_VIRTIO_WIN" in message and "nothing was changed" in message
    assert ledger.rows(wave["id"]) == rows  # refused before anything changed
    logs = run_logs(f"wave-{wave['id']}")  # what the Prefect UI shows for that run: the one line, no traceback
    assert any("cannot start" in line for line in logs) and not any("Traceback" in line for line in logs), logs

    # ... and undoing the wave needs none of that.
    undone = subprocess.run(
        [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]], capture_output=True, text=True, env=env
    )
    assert undone.returncode == 0, undone.stderr
    assert f"{len(wave['vms'])} VM(s) rolled back" in undone.stderr
    assert cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {"vmwave.io/wave": wave["id"]}) == []
    assert cluster.find("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", {"vmwave.io/wave": wave["id"]}) == []
    assert all(
        e["steps"][-1]["step"] == "rollback" and e["steps"][-1]["status"] == "succeeded"
        for e in ledger.by_vm(wave["id"])
    )


def run_logs(name: str) -> list[str]:
    """The log lines of the newest flow run called ``name``, as the Prefect UI shows them."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    async def read() -> list[str]:
        async with get_client() as client:
            [run] = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=1,
            )
            found = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
            return [log.message for log in found]

    return asyncio.run(read())


def assert_cluster_holds(cluster: Cluster, written: Path, run: str) -> None:
    """Every object `vmwave manifests` wrote is in the cluster with the same spec, labels and data.

    But the wave's vCenter credentials: the run filled in the password, and removed them when the wave ended; and
    each VM's own objects carry the run that made them (``run``, its ledger's id), which a manifest cannot know.
    """
    files = sorted(written.glob("*.yaml"))
    assert {yaml.safe_load(f.read_text())["kind"] for f in files} >= {
        "VirtualMachine",
        "DataVolume",
        "Secret",
        "Namespace",
    }
    for path in files:
        want = yaml.safe_load(path.read_text())
        meta = want["metadata"]
        if want["kind"] == "Secret":
            continue
        got = cluster.get(want["apiVersion"], want["kind"], meta.get("namespace"), meta["name"])
        assert got is not None, path.name
        labels = dict(got["metadata"].get("labels") or {})
        if want["kind"] in ("DataVolume", "VirtualMachine"):
            assert labels.pop("vmwave.io/run") == run, path.name
        assert labels == (meta.get("labels") or {}), path.name
        assert got.get("spec") == want.get("spec"), path.name
        assert got.get("data") == want.get("data"), path.name


def test_one_vm_is_cancelled_while_the_rest_of_its_wave_goes_on(
    prefect_server, wave_env, planned, tmp_path, agent_never_answers
):
    """`vmwave cancel` stops a VM waiting for its guest agent: it is rolled back and reported cancelled, not failed."""
    from prefect.settings import PREFECT_API_URL

    plan, doc, wave = planned
    stuck = wave["vms"][0]
    agent_never_answers(
        wave_env["VMWAVE_KUBECONFIG"], "vmwave", stuck["target_name"], wave_env["VMWAVE_LEDGER"], stuck["uuid"]
    )  # waits
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "VMWAVE_TIMEOUTS": "agent=600"}
    worker = subprocess.Popen(
        [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ledger = Ledger(Settings.load().ledger)

    def waiting_for_its_agent() -> bool:
        return any(
            s["step"] == "guest-agent" and s["status"] == "running"
            for e in ledger.by_vm(wave["id"])
            if e["moref"] == stuck["moref"]
            for s in e["steps"]
        )

    deadline = time.monotonic() + 300
    while not waiting_for_its_agent():
        assert worker.poll() is None and time.monotonic() < deadline, "the VM never reached its guest-agent wait"
        time.sleep(0.5)  # polling the ledger, a condition with a deadline
    cancel = subprocess.run(
        [VMWAVE, "cancel", "--plan", str(plan), "--wave", wave["id"], "--vm", stuck["name"]],
        capture_output=True,
        text=True,
        env=env,
    )
    assert cancel.returncode == 0, cancel.stderr
    output = worker.communicate(timeout=300)[0]
    assert worker.returncode == 1, output  # not every VM of the wave succeeded

    report = (tmp_path / f"wave-{wave['id']}-report.md").read_text()
    assert f"| {stuck['name']} | P3 | cancelled |" in report
    assert f"{len(wave['vms']) - 1} of {len(wave['vms'])} VMs succeeded" in report  # the others went on
    steps = {s["step"]: s for e in ledger.by_vm(wave["id"]) if e["moref"] == stuck["moref"] for s in e["steps"]}
    assert steps["guest-agent"]["cause"] == "cancelled" and steps["rollback"]["status"] == "succeeded"
    assert steps["rollback"]["detail"]["snapshot"]["source_powered_on"] is True  # the source runs again
    cluster = Cluster(wave_env["VMWAVE_KUBECONFIG"])
    assert cluster.get("kubevirt.io/v1", "VirtualMachine", "vmwave", stuck["target_name"]) is None

    done = subprocess.run(
        [VMWAVE, "cancel", "--plan", str(plan), "--wave", wave["id"], "--vm", wave["vms"][1]["name"]],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2 and "has already been migrated" in done.stderr  # nothing left to cancel
    subprocess.run(
        [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]], check=True, env=env, capture_output=True
    )


def test_a_plan_naming_unknown_vms_is_refused_before_anything_changes(prefect_server, wave_env, planned, tmp_path):
    plan, doc, _ = planned
    doc["waves"][0]["vms"][0]["moref"] = "vm-999999"
    plan.write_text(yaml.safe_dump(doc))
    from vmwave.errors import VmwaveError
    from vmwave_flows.wave import migrate_wave

    with pytest.raises(VmwaveError, match="names VMs vCenter does not have"):
        migrate_wave(str(plan), doc["waves"][0]["id"], report_dir=str(tmp_path))
    assert Ledger(Settings.load().ledger).rows() == []


def test_two_workers_share_a_wave_and_its_per_host_cap(prefect_server, wave_env, planned, tmp_path):
    """Two `vmwave migrate` processes on one wave: each VM runs once, on one of them, and one VM per host at a time."""
    from prefect.settings import PREFECT_API_URL

    plan, doc, wave = planned
    go = tmp_path / "both-workers-run"  # a barrier: each VM's pre-cutover hook waits for it
    hosts = share_a_wave(doc, wave, go)
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "VMWAVE_PER_HOST": "1",
        "VMWAVE_IN_FLIGHT": "1",
    }  # one VM at a time each
    for n in (1, 2):
        (tmp_path / f"worker-{n}").mkdir()
    workers = [
        subprocess.Popen(
            [
                VMWAVE,
                "migrate",
                "--plan",
                str(plan),
                "--wave",
                wave["id"],
                "--report-dir",
                str(tmp_path / f"worker-{n}"),
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in (1, 2)
    ]
    ledger = Ledger(Settings.load().ledger)
    deadline = time.monotonic() + 300
    while ledger.claims.claimed(wave["id"]) < 2:  # one VM each, held at its hook: both workers take part
        assert all(w.poll() is None for w in workers) and time.monotonic() < deadline, "a worker took no VM"
        time.sleep(0.2)
    go.touch()
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs  # each reports the whole wave's truth

    assert_shared_once_within_caps(
        Ledger(Settings.load().ledger).rows(wave["id"]),
        hosts,
        [tmp_path / f"worker-{n}" / f"wave-{wave['id']}-report.md" for n in (1, 2)],
    )
    undone = subprocess.run(
        [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]], capture_output=True, text=True, env=env
    )  # the sources run again for the tests after this one
    assert undone.returncode == 0, undone.stderr


def test_a_wave_killed_mid_way_finishes_on_rerun(prefect_server, wave_env, planned, tmp_path):
    """SIGKILL the `vmwave migrate` process mid-wave; the rerun finishes it and redoes nothing that had finished."""
    import signal
    import time

    from prefect.settings import PREFECT_API_URL

    plan, _, wave = planned
    ledger = Ledger(Settings.load().ledger)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    argv = [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"]]
    first = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # kill once some VMs are part-way through
        if sum(r["step"] == "cdi-import" and r["status"] == "succeeded" for r in ledger.rows(wave["id"])) >= 2:
            break
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    done_at_kill = {
        (r["moref"], r["step"]): r["attempt"] for r in ledger.rows(wave["id"]) if r["status"] == "succeeded"
    }
    assert 0 < len(done_at_kill) < 7 * len(wave["vms"])  # killed part-way: some steps done, not all
    rerun = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    entries = ledger.by_vm(wave["id"])
    assert len(entries) == len(wave["vms"])
    assert all(s["status"] in ("succeeded", "skipped") for e in entries for s in e["steps"])
    after = {(r["moref"], r["step"]): r["attempt"] for r in ledger.rows(wave["id"])}
    assert {key: after[key] for key in done_at_kill} == done_at_kill  # what had finished was not run again
    cluster = Cluster(wave_env["VMWAVE_KUBECONFIG"])
    for vm in wave["vms"]:
        assert (
            len(cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {"vmwave.io/source-uuid": vm["uuid"]})) == 1
        )
        assert (
            len(cluster.find("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", {"vmwave.io/source-uuid": vm["uuid"]}))
            >= 1
        )
    undone = subprocess.run(
        [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]], env=env, capture_output=True, text=True
    )  # the sources run again for the tests after this one
    assert undone.returncode == 0, undone.stderr


def test_a_rollback_that_cannot_undo_everything_fails_and_says_what_is_left(
    prefect_server, wave_env, planned, tmp_path
):
    """With a kubeconfig that may only read, the cluster objects cannot go: `vmwave rollback` exits 1, naming them."""
    plan, doc, wave = planned
    env = {**os.environ, "COLUMNS": "400"}  # one line per VM, as a terminal that wide prints it
    migrated = subprocess.run(
        [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    reader = str(Path(wave_env["VMWAVE_KUBECONFIG"]).with_name("kubeconfig-viewer"))
    refused = subprocess.run(
        [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]],
        env={**env, "VMWAVE_KUBECONFIG": reader},
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1, refused.stderr
    assert f"{wave['vms'][0]['name']}: the rollback failed" in refused.stderr and "forbidden" in refused.stderr, (
        refused.stderr
    )
    ledger = Ledger(Settings.load().ledger)
    assert {e["steps"][-1]["status"] for e in ledger.by_vm(wave["id"]) if e["steps"][-1]["step"] == "rollback"} == {
        "failed"
    }
    undone = subprocess.run(
        [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]], env=env, capture_output=True, text=True
    )
    assert undone.returncode == 0, undone.stderr  # run again once the cause is fixed, it finishes the undo
