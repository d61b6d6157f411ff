"""Helpers the tests share: paths, the console script, records made from an estate file without a server, the
lab KubeVirt's metrics, a wave two workers share, and a kubeconfig acting as vmwave's service account."""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from vmwave.adapters.vsphere import CHECKED_EXTRA_CONFIG
from vmwave.domain.guests import guest_os
from vmwave.domain.records import Disk, GuestDisk, Nic, Snapshot, SourceVM
from vmwave_lab import estate

REPO = Path(__file__).resolve().parent.parent
SMALL = REPO / "lab" / "estates" / "small.yaml"
VMWAVE = str(Path(sys.executable).parent / "vmwave")  # the console script of the environment under test


def estate_records(path: Path = SMALL) -> list[SourceVM]:
    """The records the lab vCenter serves for an estate, made without it (``test_estate_records`` compares them).

    Morefs and UUIDs are stable stand-ins for the simulator's own.
    """
    seed = estate.load(str(path))
    vlans, distributed, clusters = {}, set(), {}
    for dc in seed["datacenters"]:
        clusters.update({(dc["name"], c["name"]): c for c in dc["clusters"]})
        for pg in dc["standard_portgroups"]:
            vlans[pg["name"]] = pg["vlan"]
        for switch in dc["switches"]:
            for pg in switch["portgroups"]:
                vlans[pg["name"]] = pg["vlan"]
                distributed.add(pg["name"])
    records = []
    for number, vm in enumerate(seed["vms"], start=1):
        digest = hashlib.sha256(vm["name"].encode()).digest()
        disks = tuple(
            Disk(
                key=2000 + i,
                label=f"Hard disk {i + 1}",
                file=d["file"],
                datastore=d["file"][1:].split("]")[0],
                capacity_bytes=d["size_kb"] * 1024,
                controller=vm["controllers"][d["controller"]]["type"],
                bus=vm["controllers"][d["controller"]]["bus"],
                unit=d["unit"],
                sharing="multiwriter" if d["sharing"] else "none",
                mode=d["mode"],
                thin=d["thin"],
                uuid=d["uuid"],
            )
            for i, d in enumerate(vm["disks"])
        )
        powered_on = vm["power"] == "poweredOn"
        reported = powered_on and vm["tools"] == "running" and not vm["template"]  # what VMware Tools tells vCenter
        nics = tuple(
            Nic(
                key=4000 + i,
                label=f"Network adapter {i + 1}",
                mac=n["mac"],
                adapter=n["type"],
                portgroup=n["portgroup"],
                vlan=vlans.get(n["portgroup"]),
                distributed=n["portgroup"] in distributed,
                addresses=tuple(n["ips"]) if reported else (),
                address_origin=n["origin"] if reported and n["ips"] else "",
            )
            for i, n in enumerate(vm["nics"])
        )
        nic_ips = tuple(ip.split("/")[0] for n in vm["nics"] for ip in n["ips"]) if reported else ()
        cluster = clusters[(vm["datacenter"], vm["cluster"])]
        records.append(
            SourceVM(
                name=vm["name"],
                moref=f"vm-{number}",
                instance_uuid=str(uuid.UUID(bytes=digest[:16])),
                bios_uuid=str(uuid.UUID(bytes=digest[16:])),
                datacenter=vm["datacenter"],
                cluster=vm["cluster"],
                host=vm["host"],
                folder=vm["folder"],
                guest_id=vm["guest_id"],
                guest_family=guest_os(vm["guest_id"]).family,
                firmware=vm["firmware"],
                secure_boot=vm["secure_boot"],
                cpus=vm["cpus"],
                memory_mb=vm["memory_mb"],
                cbt=vm["cbt"],
                power_state=vm["power"],
                tools="not_installed"
                if vm["template"]
                else vm["tools"]
                if powered_on or vm["tools"] == "not_installed"
                else "not_running",  # as vCenter says: a template's tools never installed, an off VM's not running
                ips=tuple(vm["ips"]) if powered_on and vm["ips"] else nic_ips,
                template=vm["template"],
                disks=disks,
                nics=nics,
                snapshots=tuple(Snapshot(name, "") for name in vm["snapshots"]),
                devices=tuple(sorted(set(vm["devices"]))),
                tags=tuple(sorted(vm["tags"])),
                attributes=dict(vm["attributes"]),
                hot_add=tuple(vm["hot_add"]),
                cpu_affinity=tuple(vm["cpu_affinity"]),
                extra_config={k: v for k, v in vm["extra_config"].items() if CHECKED_EXTRA_CONFIG.match(k)},
                hostname=vm["hostname"] if reported else "",
                gateway=vm["gateway"] if reported else "",
                dns=tuple(vm["dns"]) if reported else (),
                consolidation_needed=vm["consolidation_needed"],
                fault_tolerance=vm["fault_tolerance"],
                host_state="maintenance"
                if vm["host"] in cluster["maintenance"]
                else "disconnected"
                if vm["host"] in cluster["disconnected"]
                else "connected",
                cluster_features=tuple(f for f in ("drs", "dpm") if cluster[f]),
                host_rules=tuple(sorted(r["name"] for r in cluster["vm_host_rules"] if vm["name"] in r["vms"])),
                guest_disks=tuple(
                    GuestDisk(g["path"], g["capacity_mb"] << 20, g["free_mb"] << 20) for g in vm["guest_disks"]
                )
                if reported
                else (),
            )
        )
    return sorted(records, key=lambda r: (r.name, r.moref))


def one_vm_wave(vm: SourceVM, wave: str = "w001", names: dict | None = None, window: dict | None = None, **fields):
    """A wave of ``vm`` alone as a plan file gives it (class P3, cold, unless ``fields`` say otherwise), read through
    the plan's models as a run reads it, with the plan's ``names`` and the wave's ``window``."""
    from vmwave.domain.plan_file import PLAN_SCHEMA, parse_plan

    data = {"name": vm.name, "moref": vm.moref, "uuid": vm.instance_uuid, "class": "P3", "mode": "cold", **fields}
    wave_doc = {"id": wave, "class": data["class"], "vms": [data], **({"window": window} if window else {})}
    plan = parse_plan(
        {"schema": PLAN_SCHEMA, "limits": {"wave_size": 50, "per_host": 10}, "names": names or {}, "waves": [wave_doc]},
        "test plan",
    )
    return plan.waves[0]


def planned_entry(vm: SourceVM, wave: str = "w001", names: dict | None = None, window: dict | None = None, **fields):
    """``vm``'s entry in ``one_vm_wave``: complete, as a run reads it."""
    return one_vm_wave(vm, wave, names, window, **fields).vms[0]


def small_disk(vm: SourceVM, lab, data_mb: int = 4) -> Path:
    """Give the VM's first disk a small flat file (32 MiB), so CDI streams it over HTTPS in a moment; the data file."""
    from vmwave_lab.vcenter import write_disk

    return write_disk(lab, vm.datacenter, vm.disks[0].file, data_mb, 32 << 10, f"small/{vm.name}")


def kubevirt_metrics_text(kube) -> str:
    """The lab KubeVirt's /metrics as Prometheus reads it."""
    context = ssl.create_default_context(cafile=str(kube.ca_file))
    with urllib.request.urlopen(f"{kube.url}/metrics", context=context, timeout=10) as answer:
        return answer.read().decode()


def kubevirt_metrics(kube, **wanted) -> dict:
    """The lab KubeVirt's /metrics, its samples by (name, labels), only those whose labels include ``wanted``."""
    text = kubevirt_metrics_text(kube)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if wanted.items() <= s.labels.items()
    }


DASHBOARDS = {
    path.name: json.loads(path.read_text()) for path in sorted((REPO / "grafana" / "dashboards").glob("*.json"))
}


def expressions(board: dict) -> list[str]:
    """Every query of a Grafana dashboard: its panels' and its query variables'."""
    found = [t["expr"] for p in board["panels"] for t in p["targets"]]
    return found + [v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"]


def as_promql(expr: str) -> str:
    """What Prometheus receives from Grafana: variables and macros replaced, label_values() as its metric."""
    values = re.match(r"^label_values\(([^,]+),", expr)
    if values:
        return values.group(1)
    return expr.replace("$__rate_interval", "1m").replace("$wave", ".*").replace("$namespace", ".*")


def share_a_wave(doc: dict, wave: dict, barrier: Path) -> dict[str, str]:
    """Make ``wave`` one that two workers share: the web tier merged in (copied cold), each VM held at a
    pre-cutover hook until ``barrier`` exists; returns each VM's ESXi host by moref."""
    web = next(w for w in doc["waves"] if w["class"] == "P2")
    wave["vms"] += [{**vm, "mode": "cold"} for vm in web["vms"]]
    doc["waves"].remove(web)
    wave["hooks"] = {
        "pre_cutover": {
            "image": "registry.access.redhat.com/ubi9/ubi-minimal:latest",
            "command": ["/bin/sh", "-c", f"while [ ! -e {barrier} ]; do sleep 0.2; done"],
        }
    }
    hosts = {vm["moref"]: vm["host"] for vm in wave["vms"]}
    assert max(list(hosts.values()).count(h) for h in hosts.values()) >= 2  # the cap has something to hold back
    return hosts


def assert_shared_once_within_caps(rows: list[dict], hosts: dict[str, str], reports: list[Path]) -> None:
    """Every VM ran once, each worker ran some and reported the whole wave, and never two VMs on one host at once."""
    assert {r["moref"] for r in rows} == set(hosts) and all(r["attempt"] == 1 for r in rows)
    for report in reports:
        text = report.read_text()
        assert f"{len(hosts)} of {len(hosts)} VMs succeeded" in text
        assert "| succeeded |" in text and "| succeeded on another worker |" in text, text
    spans: dict[str, list[tuple]] = {}
    for moref in hosts:
        mine = [r for r in rows if r["moref"] == moref]
        spans.setdefault(hosts[moref], []).append(
            (min(r["started_at"] for r in mine), max(r["finished_at"] for r in mine))
        )
    for host, intervals in spans.items():
        intervals.sort()
        assert all(later[0] >= earlier[1] for earlier, later in zip(intervals, intervals[1:])), host  # never two


RBAC = REPO / "deployments" / "kubernetes" / "rbac.yaml"
CONVERSION = {  # a guest conversion's: the e2e tier's real guest asks them under the same account
    ("", "configmaps", "create"),
    ("", "configmaps", "delete"),
    ("", "configmaps", "get"),
    ("", "pods", "create"),
    ("", "pods", "get"),
    ("", "pods", "watch"),
    ("", "pods", "delete"),
    ("", "pods/log", "get"),
    ("kubevirt.io", "virtualmachineinstances", "list"),
}  # whether a running VM uses the volumes


def service_account_kubeconfig(
    admin: str, out: Path, account: str = "vmwave-worker", namespace: str = "vmwave-system"
) -> Path:
    """Apply vmwave's shipped RBAC as an admin would, and write a kubeconfig that acts as ``account`` only."""

    def kubectl(*argv: str) -> str:
        done = subprocess.run(["kubectl", "--kubeconfig", admin, *argv], capture_output=True, text=True)
        assert done.returncode == 0, f"kubectl {' '.join(argv)}: {done.stderr}"
        return done.stdout

    kubectl("apply", "--validate=false", "-f", str(RBAC))  # the lab serves no OpenAPI document to validate with
    token = kubectl("-n", namespace, "create", "token", account).strip()
    config = yaml.safe_load(Path(admin).read_text())
    config["users"][0]["user"] = {"token": token}
    out.touch(mode=0o600)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def rbac_audit(admin: str, account: str = "system:serviceaccount:vmwave-system:vmwave-worker") -> tuple[list, set]:
    """What the lab API's RBAC refused ``account``, and the (group, resource, verb) it allowed, from its audit file."""
    audit = Path(admin).parent / "kube-audit.jsonl"
    asked = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
    mine = [a for a in asked if a["user"] == account]
    used = {
        (a["group"], "/".join(p for p in (a["resource"], a["subresource"]) if p), a["verb"])
        for a in mine
        if a["allowed"]
    }
    return [a for a in mine if not a["allowed"]], used


def granted(role: str = "vmwave-worker") -> set:
    """The (group, resource, verb) the shipped ClusterRole grants."""
    rules = next(
        d for d in yaml.safe_load_all(RBAC.read_text()) if d["kind"] == "ClusterRole" and d["metadata"]["name"] == role
    )["rules"]
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
