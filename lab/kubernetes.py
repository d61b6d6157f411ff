"""Start and stop the lab Kubernetes API, and write a kubeconfig for it."""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from typing import Any

import yaml

from vmwave_lab.process import LabError, read_ready, spawn
from vmwave_lab.process import stop as stop_process

# Used when the estate declares no `nodes:`: a general node and one prepared for latency-sensitive VMs.
DEFAULT_NODES = [
    {
        "name": "lab-node-1",
        "cpu": 16,
        "memory_gi": 64,
        "hugepages_1gi": 0,
        "labels": {"kubevirt.io/schedulable": "true"},
    },
    {
        "name": "lab-node-2",
        "cpu": 32,
        "memory_gi": 128,
        "hugepages_1gi": 64,
        "labels": {"kubevirt.io/schedulable": "true", "cpumanager": "true"},
    },
]


@dataclass(frozen=True)
class LabKubernetes:
    url: str
    kubeconfig: Path
    ca_file: Path
    pid: int
    state_dir: Path


def running(state: Path) -> LabKubernetes | None:
    info = read_ready(state, "kube")
    if info is None:
        return None
    return LabKubernetes(info["url"], state / "kubeconfig", Path(info["ca"]), info["pid"], state)


def start(
    state: Path, config: dict[str, Any] | None = None, listen: str = "127.0.0.1:0", timeout: float = 60.0
) -> LabKubernetes:
    """Start the API (objects persist in STATE/kube.db across restarts) and write STATE/kubeconfig."""
    if running(state):
        raise LabError(f"a lab Kubernetes already runs from {state}; stop it first with `vmwave lab down`")
    state.mkdir(parents=True, exist_ok=True)
    tokens_file = state / "kube-tokens.json"
    if not tokens_file.exists():
        tokens_file.touch(mode=0o600)
        tokens_file.write_text(json.dumps({"admin": secrets.token_urlsafe(24), "viewer": secrets.token_urlsafe(24)}))
    if config is not None or not (state / "kube-config.json").exists():  # a restart keeps what it was started with
        (state / "kube-config.json").write_text(json.dumps({"nodes": DEFAULT_NODES, **(config or {})}))
    info = spawn(
        "kube", [sys.executable, "-m", "vmwave_lab.kube", "--dir", str(state), "--listen", listen], state, timeout
    )
    tokens = json.loads(tokens_file.read_text())
    write_kubeconfig(state / "kubeconfig", info["url"], Path(info["ca"]), tokens["admin"])
    write_kubeconfig(state / "kubeconfig-viewer", info["url"], Path(info["ca"]), tokens["viewer"])
    return LabKubernetes(info["url"], state / "kubeconfig", Path(info["ca"]), info["pid"], state)


def write_kubeconfig(path: Path, url: str, ca: Path, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "vmwave-lab",
        "clusters": [{"name": "vmwave-lab", "cluster": {"server": url, "certificate-authority": str(ca)}}],
        "users": [{"name": "vmwave-lab", "user": {"token": token}}],
        "contexts": [
            {"name": "vmwave-lab", "context": {"cluster": "vmwave-lab", "user": "vmwave-lab", "namespace": "default"}}
        ],
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def stop(state: Path) -> bool:
    return stop_process(state, "kube")


def restart(state: Path) -> LabKubernetes:
    """The API stopped and started again on its address, with its objects and settings: what a control plane's
    restart looks like to its clients (watches end, connections drop, nothing else changes)."""
    was = running(state)
    if was is None:
        raise LabError(f"no lab Kubernetes runs from {state}")
    stop(state)
    return start(state, listen=urlparse(was.url).netloc)
