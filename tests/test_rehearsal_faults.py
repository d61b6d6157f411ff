"""A rehearsal on a bad day: mid-wave, a worker is killed with SIGKILL (with the wave runs it was running), the
Prefect server is restarted, the lab's Kubernetes API is restarted and every vCenter session is ended. Nothing is
lost or duplicated: every VM ends in one final state, one VirtualMachine per source, the report is complete and
says what happened.

The faults come from outside, as they would: the test finds the rehearsal's
processes by what they run, and acts when the lab shows a wave in flight.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

import pytest
import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pyVim.connect import Disconnect, SmartConnect

from helpers import REPO, VMWAVE
from vmwave.domain.classes import DEFAULT_RULES
from vmwave.domain.manifests import KEPT_FOR_RETRY, LABEL_UUID
from vmwave_lab import kubernetes as lab_kube
from vmwave_lab import vcenter as lab_vcenter
from vmwave_lab.process import wait_for

DATA = REPO / "tests" / "data"


def processes(root: int) -> dict[int, tuple[int, str]]:
    """pid -> (parent, command line) of ``root``'s descendants."""
    table = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            table[int(entry.name)] = (parent, (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        for child, (parent, line) in table.items():
            if parent == pid:
                found[child] = (parent, line)
                todo.append(child)
    return found


def running(root: int, what: str) -> dict[int, str]:
    return {pid: line for pid, (_, line) in processes(root).items() if what in line}


def until(condition, what: str, rehearsal: subprocess.Popen, timeout: float = 300):
    """``condition()``'s first true value, while the rehearsal still runs (else the fault came too late)."""
    seen = [None]

    def met() -> bool:
        seen[0] = condition() if rehearsal.poll() is None else None
        return rehearsal.poll() is not None or bool(seen[0])

    wait_for(met, time.monotonic() + timeout, poll=0.2)
    assert seen[0], f"{what}: not while the rehearsal ran"
    return seen[0]


def wave_running(rehearsal: subprocess.Popen) -> bool:
    """A wave's run is under way: a worker runs its flow run's process."""
    return bool(running(rehearsal.pid, "prefect.engine"))


def in_flight(api: client.CustomObjectsApi) -> bool:
    """A wave is mid-way: some DataVolume not yet imported, or some VMI whose guest agent has not connected (the
    VM planted to fail waits 15 s there). An import of 8 MiB alone lasts about a second, which a poll that walks
    /proc could miss for a whole rehearsal."""
    try:
        dvs = api.list_cluster_custom_object("cdi.kubevirt.io", "v1beta1", "datavolumes")["items"]
        vmis = api.list_cluster_custom_object("kubevirt.io", "v1", "virtualmachineinstances")["items"]
    except (ApiException, urllib3.exceptions.HTTPError):  # the API restarting
        return False
    agents = [
        any(
            c.get("type") == "AgentConnected" and c.get("status") == "True"
            for c in (v.get("status") or {}).get("conditions", [])
        )
        for v in vmis
    ]
    return any((dv.get("status") or {}).get("phase") != "Succeeded" for dv in dvs) or not all(agents)


def end_vcenter_sessions(state: Path) -> int:
    """Every session but this one ended, as vCenter's idle timeout or an administrator would."""
    center = lab_vcenter.running(state)
    url = urlparse(center.url)
    si = SmartConnect(
        host=url.hostname,
        port=url.port,
        user=center.user,
        pwd=center.password_file.read_text().strip(),
        sslContext=ssl.create_default_context(cafile=str(center.ca_file)),
    )
    try:
        manager = si.content.sessionManager
        others = [s.key for s in manager.sessionList if s.key != manager.currentSession.key]
        if others:
            manager.TerminateSession(others)
        return len(others)
    finally:
        Disconnect(si)


@pytest.mark.lab
@pytest.mark.prefect
def test_a_rehearsal_survives_killed_workers_restarted_servers_and_ended_sessions(tmp_path):
    now = datetime.now(timezone.utc)
    rules = {
        **yaml.safe_load(DEFAULT_RULES),
        "schedule": {"start": (now + timedelta(days=1)).isoformat(), "every": "7d", "length": "6h"},
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "failures.yaml").write_text("guest-agent-not-connected: 1\n")
    out, lab_state = tmp_path / "rehearsal", tmp_path / "rehearsal" / "lab"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VMWAVE_", "PREFECT_"))},
        "VMWAVE_TIMEOUTS": "agent=15,import=60,boot=120",
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
        "--workers",
        "2",
        "--in-flight",
        "2",
        "--data-mb",
        "8",
        "--clock",
        "1d=5s",
        "--out",
        str(out),
    ]
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        rehearsal = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr)
    try:
        kube_config = until(
            lambda: (lab_state / "kubeconfig").exists() and lab_kube.running(lab_state), "the lab", rehearsal
        )
        api = client.CustomObjectsApi(config.new_client_from_config(str(kube_config.kubeconfig)))

        # 1. mid-wave, a worker dies with the wave runs it runs, as its machine would
        def busy_worker():
            if not in_flight(api):
                return None
            table = processes(rehearsal.pid)
            return next(
                (
                    pid
                    for pid, (_, line) in table.items()
                    if "worker start" in line and any(parent == pid for parent, _ in table.values())
                ),
                None,
            )

        worker = until(busy_worker, "a worker running a wave mid-way", rehearsal)
        for pid in [worker, *processes(worker)]:
            os.kill(pid, signal.SIGKILL)
        until(
            lambda: len(set(running(rehearsal.pid, "worker start")) - {worker}) == 2, "the worker restarted", rehearsal
        )

        # 2. the Prefect server restarted while waves run
        server = next(iter(running(rehearsal.pid, "server start")))
        os.kill(server, signal.SIGTERM)
        until(lambda: set(running(rehearsal.pid, "server start")) - {server}, "the server restarted", rehearsal)

        # 3. the lab's Kubernetes API restarted while waves run
        until(lambda: wave_running(rehearsal), "a wave in flight", rehearsal)
        lab_kube.restart(lab_state)

        # 4. every vCenter session ended while waves run
        until(
            lambda: wave_running(rehearsal) and end_vcenter_sessions(lab_state), "a vCenter session in use", rehearsal
        )

        rehearsal.wait(900)
    finally:
        if rehearsal.poll() is None:
            rehearsal.terminate()
            rehearsal.wait(60)
    printed = (tmp_path / "stdout").read_text()
    assert rehearsal.returncode == 0, printed + (tmp_path / "stderr").read_text()[-4000:]
    figures = dict(pair.split("=") for pair in printed.strip().splitlines()[-1].split())
    assert (figures["vms"], figures["succeeded"], figures["injected"], figures["attributed"]) == ("12", "11", "1", "1")
    records = json.loads((out / "estate.json").read_text())
    assert sorted(r["state"] for r in records) == ["failed"] + ["succeeded"] * 11  # one final state each
    assert len({r["uid"] for r in records if r["uid"]}) == 11
    # a step that failed and was retried (the API or vCenter away) left what the steps before it made
    assert not [r["name"] for r in records if r["state"] == "succeeded" and "rollback" in r["attempts"]]
    report = (out / "estate-report.md").read_text()
    assert "**11 of 12 VMs migrated" in report
    assert "worker rehearsal-" in report and "signal 9" in report and "scheduled again" in report
    assert "the Prefect server ended \\(signal 15\\); started again" in report

    # nothing duplicated: one VirtualMachine per source, and every DataVolume belongs to one of them
    kube_config = lab_kube.running(lab_state) or lab_kube.start(lab_state)
    api = client.CustomObjectsApi(config.new_client_from_config(str(kube_config.kubeconfig)))
    try:
        vms = api.list_cluster_custom_object("kubevirt.io", "v1", "virtualmachines")["items"]
        dvs = api.list_cluster_custom_object("cdi.kubevirt.io", "v1beta1", "datavolumes")["items"]
    finally:
        lab_kube.stop(lab_state)
    sources = [vm["metadata"]["labels"][LABEL_UUID] for vm in vms]
    assert len(sources) == len(set(sources)) == 11
    kept = {dv["metadata"]["labels"][LABEL_UUID] for dv in dvs if KEPT_FOR_RETRY in dv["metadata"]["labels"]}
    assert {dv["metadata"]["labels"][LABEL_UUID] for dv in dvs} - kept == set(sources)
    assert len(kept) <= 1 and not kept & set(sources)  # the failed VM's copy, kept for `vmwave retry`
