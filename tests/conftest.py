"""Shared fixtures: one real lab (vCenter simulator and lab Kubernetes) and one Prefect test server per session.

Markers follow the fixtures a test uses, so none is forgotten: a test that
starts a lab server is ``lab``, one that needs the Prefect server ``prefect``;
``-m "not lab and not prefect and not e2e"`` is the fast tier, which needs no server.
The ``kind`` tier (a real cluster) runs only when ``-m`` names it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from helpers import VMWAVE, estate_records  # noqa: E402
from vmwave.adapters.vsphere import inventory  # noqa: E402
from vmwave.settings import VCenter  # noqa: E402
from vmwave_lab import lab as lab_control  # noqa: E402
from vmwave_lab import vcenter  # noqa: E402

LAB_FIXTURES = {"lab_settings", "lab", "target", "records", "by_name", "lab_env", "kube", "kclient", "dyn", "wave_lab"}
PREFECT_FIXTURES = {"prefect_server"}


def pytest_collection_modifyitems(config, items):
    opted_in = "kind" in (config.option.markexpr or "")  # the real-cluster tier takes an hour: only when asked
    for item in items:
        if "kind" in item.keywords and not opted_in:
            item.add_marker(pytest.mark.skip(reason="the kind tier is opt-in: ./dev test -m kind"))
        used = set(getattr(item, "fixturenames", ()))
        if used & LAB_FIXTURES:
            item.add_marker(pytest.mark.lab)
        if used & PREFECT_FIXTURES:
            item.add_marker(pytest.mark.prefect)


@pytest.fixture(scope="session")
def estate():
    """The small example estate's records, made from the file without any server (fast tier)."""
    return estate_records()


@pytest.fixture(scope="session")
def estate_by_name(estate):
    return {r.name: r for r in estate}


@pytest.fixture(scope="session")
def lab_settings(tmp_path_factory):
    """The small example estate in the lab vCenter and the lab Kubernetes, as `vmwave lab up` starts them."""
    state = tmp_path_factory.mktemp("lab")
    settings = lab_control.up(state_dir=state)
    yield settings
    lab_control.down(state)


@pytest.fixture(scope="session")
def lab(lab_settings):
    return vcenter.running(Path(lab_settings["VMWAVE_VCENTER_PASSWORD_FILE"]).parent)


@pytest.fixture(scope="session")
def target(lab) -> VCenter:
    return VCenter(url=lab.url, user=lab.user, password_file=lab.password_file, ca_file=lab.ca_file)


@pytest.fixture(scope="session")
def records(target):
    return inventory(target, page_size=4)  # small pages: the continuation token is exercised


@pytest.fixture(scope="session")
def by_name(records):
    return {r.name: r for r in records}


@pytest.fixture
def lab_env(lab_settings) -> dict[str, str]:
    return dict(os.environ, **lab_settings)


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    """A lab Kubernetes of its own (module scope), with one node that has hugepages and the CPU manager."""
    from vmwave_lab import kubernetes as lab_kube

    state = tmp_path_factory.mktemp("kube")
    nodes = [
        {"name": "lab-node-1", "cpu": 8, "memory_gi": 32, "hugepages_1gi": 0, "labels": {}},
        {"name": "lab-node-2", "cpu": 16, "memory_gi": 64, "hugepages_1gi": 16, "labels": {"cpumanager": "true"}},
    ]
    started = lab_kube.start(
        state,
        {
            "nodes": nodes,
            "storage_classes": [
                {"name": "rook-ceph-block-vm", "capacity_gi": 40, "default": True},
                {"name": "tiny", "capacity_gi": 1},
            ],
            "phase_delay": 0.02,
        },
    )
    yield started
    lab_kube.stop(state)


@pytest.fixture(scope="module")
def kclient(kube):
    from kubernetes import config

    return config.new_client_from_config(str(kube.kubeconfig))


@pytest.fixture(scope="module")
def dyn(kclient):
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(kclient)


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for the session (it takes ~9 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def wave_lab(tmp_path_factory):
    """A lab of its own with a generated estate of 12 VMs, for whole waves."""
    state = tmp_path_factory.mktemp("wave-lab")
    settings = lab_control.up(vms=12, state_dir=state)
    yield settings
    lab_control.down(state)


@pytest.fixture
def wave_env(wave_lab, tmp_path, monkeypatch) -> dict[str, str]:
    """The wave lab's settings in this process's environment, with a ledger and work directory of this test's."""
    env = {**wave_lab, "VMWAVE_LEDGER": str(tmp_path / "ledger.db"), "VMWAVE_WORKDIR": str(tmp_path / "work")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def planned(wave_env, tmp_path):
    """`vmwave plan` of the wave lab: (the plan file, its document, its first P3 wave)."""
    plan = tmp_path / "plan.yaml"
    subprocess.run(
        [VMWAVE, "plan", "--out", str(plan)], check=True, capture_output=True, env={**os.environ, **wave_env}
    )
    doc = yaml.safe_load(plan.read_text())
    return plan, doc, next(w for w in doc["waves"] if w["class"] == "P3")


@pytest.fixture
def vm_job(lab_settings, tmp_path):
    """Builds one VM's job in a wave of its own as a run builds it (``wave_jobs``, with its clients open until the
    test ends): ``vm_job(vm, "w900", mode="rebuild", env={...}, timeouts={...}, keep_for_debug=True, **entry)``.

    The ledger and work directory are the test's; ``env`` changes settings, e.g. ``{"VMWAVE_VDDK_IMAGE": ""}``
    reads the disks over HTTPS instead of VDDK."""
    from contextlib import ExitStack

    from helpers import one_vm_wave
    from vmwave.domain.names import target_name
    from vmwave.plugins import planned_tool
    from vmwave.settings import Settings, Timeouts
    from vmwave_tasks.clients import open_clients
    from vmwave_tasks.job import Choices
    from vmwave_tasks.wave import wave_jobs

    def build(vm, wave, env=None, timeouts=None, keep_for_debug=False, **entry):
        env = {
            **lab_settings,
            "VMWAVE_LEDGER": str(tmp_path / "ledger.db"),
            "VMWAVE_WORKDIR": str(tmp_path / "work"),
            **(env or {}),
        }
        settings = Settings.load(
            env=env, timeouts=Timeouts(**(timeouts or {"shutdown": 60, "import": 120, "boot": 60, "agent": 5}))
        )
        fields = {"convert": planned_tool(vm), "target_name": target_name(vm.name), **entry}
        plan_wave = one_vm_wave(vm, wave, keep_for_debug=keep_for_debug, **fields)
        clients = opened.enter_context(open_clients(settings))
        jobs, problems = wave_jobs(plan_wave, [vm], settings, clients, Choices(keep_for_debug=keep_for_debug))
        assert not problems, problems
        return jobs[0]

    with ExitStack() as opened:
        yield build


@pytest.fixture
def agent_never_answers():
    """Make a VM's guest agent never connect, the lab's way: an annotation on the VirtualMachine, set first."""
    from vmwave.adapters.kubernetes import Cluster

    def apply(kubeconfig: str, namespace: str, name: str, ledger: str, source_uuid: str = "") -> None:
        """``ledger``: the one the migration runs with, whose run the VirtualMachine is then, as if it made it;
        ``source_uuid``: the VM's own, so a wave's pre-flight sees its VirtualMachine, not someone else's."""
        from vmwave.adapters.ledger import Ledger
        from vmwave.settings import Settings

        cluster = Cluster(kubeconfig)
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        metadata = {
            "name": name,
            "namespace": namespace,
            "annotations": {"lab.vmwave.io/guest-agent": "never"},
            "labels": {"vmwave.io/run": Ledger(Settings.load(env={}, ledger=ledger).ledger).run_id},
        }
        if source_uuid:
            metadata["labels"]["vmwave.io/source-uuid"] = source_uuid
        cluster.dynamic.server_side_apply(
            cluster.resource("kubevirt.io/v1", "VirtualMachine"),
            field_manager="lab-test",
            body={"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": metadata},
        )

    return apply


@pytest.fixture
def secrets_stay_secret():
    """A check that the vCenter password and the lab's tokens never reached argv, a log, a report or a flow
    parameter."""
    import asyncio
    import json

    from prefect.client.orchestration import get_client

    def check(settings: dict[str, str], reports: list[Path] = ()) -> None:
        state = Path(settings["VMWAVE_KUBECONFIG"]).parent
        secrets = [Path(settings["VMWAVE_VCENTER_PASSWORD_FILE"]).read_text().strip()]
        secrets += list(json.loads((state / "kube-tokens.json").read_text()).values())
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert not any(secret in text for secret in secrets), cmdline
        for log in [*state.glob("*.log"), *reports]:
            text = log.read_text(errors="replace")
            assert not any(secret in text for secret in secrets), log

        async def parameters():
            async with get_client() as client:
                return [str(run.parameters) for run in await client.read_flow_runs()]

        found = asyncio.run(parameters())
        assert found and not any(secret in params for params in found for secret in secrets)

    return check
