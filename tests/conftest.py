"""Shared fixtures: one real lab vCenter (govmomi's simulator) per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from vmwave.adapters.vsphere import VCenter, inventory  # noqa: E402
from vmwave_lab import estate, vcenter  # noqa: E402
from vmwave_lab import lab as lab_control  # noqa: E402

SMALL = Path(estate.__file__).parent / "estates" / "small.yaml"
REPO = Path(__file__).resolve().parent.parent
VMWAVE = str(Path(sys.executable).parent / "vmwave")  # the console script of the environment under test


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
    nodes = [{"name": "lab-node-1", "cpu": 8, "memory_gi": 32, "hugepages_1gi": 0, "labels": {}},
             {"name": "lab-node-2", "cpu": 16, "memory_gi": 64, "hugepages_1gi": 16, "labels": {"cpumanager": "true"}}]
    started = lab_kube.start(state, {"nodes": nodes, "storage_classes": [
        {"name": "rook-ceph-block-vm", "capacity_gi": 40, "default": True},
        {"name": "tiny", "capacity_gi": 1}], "phase_delay": 0.02})
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
