"""`vmwave bundle`: what someone needs to find why a wave's VM failed, in one file to attach to a ticket.

Per VM: its plan entry, its ledger rows, what vCenter said of it, its Kubernetes objects and their events, the
conversion log the worker kept and the logs of its conversion and importer pods; and the wave's report. Every
text passes through ``vmwave.domain.redact`` with the secrets vmwave knows (the vCenter password, the
kubeconfig's credentials, the wave's credentials Secret), and Secrets themselves are never read into it.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

from vmwave.adapters.documents import dump_yaml, read_yaml
from vmwave.adapters.files import inside, load_maps, load_plan
from vmwave.adapters.kubernetes import Cluster

from vmwave.adapters.vsphere import inventory, password
from vmwave.domain.build import credentials_name
from vmwave.domain.conversion_pod import conversion_name
from vmwave.domain.manifests import LABEL_UUID
from vmwave.domain.plan import find_wave
from vmwave.domain.plan_file import PlannedEntry, WavePlan
from vmwave.domain.records import SourceVM
from vmwave.domain.redact import redacted
from vmwave.errors import VmwaveError
from vmwave.settings import Settings
from vmwave_tasks.clients import Clients, open_clients

KINDS = [
    ("kubevirt.io/v1", "VirtualMachine"),
    ("kubevirt.io/v1", "VirtualMachineInstance"),
    ("cdi.kubevirt.io/v1beta1", "DataVolume"),
    ("v1", "Pod"),
    ("v1", "ConfigMap"),
    ("batch/v1", "Job"),
]  # a VM's own objects, by its source label; never a Secret
LOG_LINES = 2000


def known_secrets(settings: Settings, cluster: Cluster | None, namespace: str, wave: str) -> list[str]:
    """Every secret vmwave can name for this wave: what the bundle must not hold."""
    found = []
    try:
        found.append(password(settings.need_vcenter()))
    except VmwaveError:
        pass
    if settings.kubeconfig is not None and settings.kubeconfig.is_file():
        document = read_yaml(settings.kubeconfig, "kubeconfig", 4 << 20) or {}
        for user in document.get("users") or []:
            entry = (user or {}).get("user") or {}
            found += [
                str(entry[k])
                for k in ("token", "password", "client-key-data", "client-certificate-data")
                if entry.get(k)
            ]
    if cluster is not None:
        secret = cluster.get("v1", "Secret", namespace, credentials_name(wave)) or {}
        found += [base64.b64decode(v).decode(errors="replace") for v in (secret.get("data") or {}).values()]
    return found


class Bundle:
    """A tar.gz being written: every member redacted of the wave's secrets."""

    def __init__(self, path: Path, root: str, secrets: list[str]):
        self.tar = tarfile.open(path, "w:gz")
        self.root, self.secrets = root, secrets

    def add(self, name: str, text: str) -> None:
        data = redacted(text, self.secrets).encode()
        info = tarfile.TarInfo(f"{self.root}/{name}")
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
        self.tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self.tar.close()


def _vm_objects(cluster: Cluster, namespace: str, uuid: str) -> list[dict[str, Any]]:
    """A VM's objects by its source label, and the PVCs CDI made for its DataVolumes (named as they are)."""
    found = []
    for api_version, kind in KINDS:
        try:
            found += cluster.find(api_version, kind, namespace, {LABEL_UUID: uuid})
        except VmwaveError:  # a kind the cluster does not serve
            continue
    labelled = {o["metadata"]["name"] for o in found if o["kind"] == "PersistentVolumeClaim"}
    claims = [
        cluster.get("v1", "PersistentVolumeClaim", namespace, o["metadata"]["name"])
        for o in found
        if o["kind"] == "DataVolume" and o["metadata"]["name"] not in labelled
    ]
    return found + [c for c in claims if c is not None]


def debug_bundle(
    plan_file: str, wave: str, vm_names: list[str], settings: Settings, report_dir: str, out: Path
) -> dict[str, Any]:
    """Write the bundle of ``vm_names`` of the wave (every VM the ledger knows in it when none is named) to
    ``out``; what it holds, per VM."""
    wave_plan = find_wave(load_plan(plan_file, settings.max_file_bytes), wave)
    with open_clients(settings) as clients:
        return _write(wave_plan, vm_names, settings, clients, report_dir, out)


def _write(
    wave_plan: WavePlan, vm_names: list[str], settings: Settings, clients: Clients, report_dir: str, out: Path
) -> dict[str, Any]:
    recorded = {row["vm"]: row for row in clients.steps.by_vm(wave_plan.id)}
    unknown = sorted(set(vm_names) - {vm.name for vm in wave_plan.vms})
    if unknown:
        raise VmwaveError(f"wave {wave_plan.id} has no VM {', '.join(unknown)}", "name VMs as the plan has them")
    entries = [vm for vm in wave_plan.vms if (vm.name in vm_names if vm_names else vm.name in recorded)]
    maps = load_maps(settings.need_maps(), settings.max_file_bytes)
    cluster = clients.cluster
    records = {r.moref: r for r in inventory(settings.need_vcenter(), only=[e.moref for e in entries])}
    partial = out.with_name(out.name + ".part")
    bundle = Bundle(
        partial, f"vmwave-bundle-{wave_plan.id}", known_secrets(settings, cluster, maps.namespace, wave_plan.id)
    )
    held: dict[str, list[str]] = {}
    try:
        plan_doc = wave_plan.model_dump(mode="json", by_alias=True, exclude_none=True)
        plan_doc["vms"] = [vm for vm in plan_doc["vms"] if vm["name"] in {e.name for e in entries}]
        bundle.add("plan.yaml", dump_yaml(plan_doc, sort_keys=False))
        for suffix in ("report.md", "timeline.svg"):
            report = inside(report_dir, f"wave-{wave_plan.id}-{suffix}")
            if report.is_file():
                bundle.add(report.name, report.read_text(errors="replace"))
        events = cluster.items("v1", "Event", maps.namespace)
        for entry in entries:
            held[entry.name] = _add_vm(
                bundle,
                entry,
                recorded.get(entry.name),
                records.get(entry.moref),
                cluster,
                maps.namespace,
                events,
                settings,
                wave_plan.id,
            )
        bundle.add("index.json", json.dumps({e.name: f"vms/{e.uuid or e.moref}" for e in entries}, indent=2))
    finally:
        bundle.close()
    partial.chmod(0o600)
    partial.replace(out)
    return {"bundle": str(out), "vms": held}


def _add_vm(
    bundle: Bundle,
    entry: PlannedEntry,
    ledger_rows: dict | None,
    record: SourceVM | None,
    cluster: Cluster,
    namespace: str,
    events: list[dict[str, Any]],
    settings: Settings,
    wave: str,
) -> list[str]:
    """One VM's part of the bundle, under ``vms/<its instance UUID>``; the files it got."""
    where = f"vms/{entry.uuid or entry.moref}"
    added = ["ledger.json"]
    bundle.add(
        f"{where}/ledger.json", json.dumps(ledger_rows or {"vm": entry.name, "steps": []}, indent=2, default=str)
    )
    if record is not None:
        bundle.add(f"{where}/vcenter.json", json.dumps(record.to_dict(), indent=2, default=str))
        added.append("vcenter.json")
    objects = _vm_objects(cluster, namespace, entry.uuid) if entry.uuid else []
    bundle.add(f"{where}/objects.yaml", dump_yaml(objects, sort_keys=False))
    names = {o["metadata"]["name"] for o in objects}
    mine = [e for e in events if ((e.get("involvedObject") or {}).get("name")) in names]
    bundle.add(
        f"{where}/events.txt",
        "".join(
            f"{e.get('lastTimestamp') or e.get('eventTime') or ''} {e.get('type', '')} "
            f"{(e.get('involvedObject') or {}).get('kind', '')}/{(e.get('involvedObject') or {}).get('name', '')} "
            f"{e.get('reason', '')}: {e.get('message', '')}\n"
            for e in mine
        ),
    )
    added += ["objects.yaml", "events.txt"]
    kept = inside(settings.workdir, wave, entry.uuid, "virt-v2v.log") if entry.uuid else None
    if kept is not None and kept.is_file():
        bundle.add(f"{where}/conversion.log", kept.read_text(errors="replace"))
        added.append("conversion.log")
    pods = (
        {conversion_name(entry.target)}
        | {o["metadata"]["name"] for o in objects if o["kind"] == "Pod"}
        | {f"importer-{o['metadata']['name']}" for o in objects if o["kind"] == "DataVolume"}
    )
    for pod in sorted(pods):
        text = cluster.pod_log(namespace, pod, tail_lines=LOG_LINES)
        if text:
            bundle.add(f"{where}/pods/{pod}.log", text)
            added.append(f"pods/{pod}.log")
    return added
