"""Hostile names on the lab: VMs, datastores, networks and folders named to break paths, shells, markup and terminals.

Each is planned, checked, rendered and migrated through the real CLI, the lab
vCenter and the lab cluster: no file is written outside its folder, no
command runs (each name would create a file if one did), every object fits
the upstream schemas and Kubernetes' name rules, and what a person reads
(the terminal, the report) holds no control character and no markup of the
names' making. A NUL cannot be in a vSphere name (its API is XML 1.0, which
has no NUL); the fuzz tier gives it to the files instead.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

import schema_check
from helpers import VMWAVE
from vmwave.adapters.kubernetes import Cluster
from vmwave.domain.names import is_k8s_name, is_label_value
from vmwave_lab import lab as lab_control

pytestmark = pytest.mark.prefect
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


TRAP = '"$VMWAVE_TRAP"'  # a file that appears if any of these names ever runs as a shell command


def hostile_names() -> list[str]:
    """VM names for paths, shells, markup, terminals, scripts and length: 240 characters (vSphere allows 80; a file
    name on the lab's datastore 255 bytes; the fuzz tier reads longer ones from files)."""
    return [
        f"x\ntouch {TRAP}\n#",
        "../../etc/passwd",
        f"[/] [bold]x[/bold] $(touch {TRAP})",
        f"`touch {TRAP}` 'single' \"double\"",
        "\x1b[31mred\x1b[0m \u202eevil",
        "数据库-01",
        "🚀 launch",
        "مرحبا بالعالم",
        "long-" + "x" * 235,
    ]


def estate(names: list[str]) -> dict:
    disk = {"size_gb": 1, "datastore": f"ds `touch {TRAP}` 数据", "data_mb": 1}
    folder, portgroup = f"prod/应用 $(touch {TRAP})", f"pg '$(touch {TRAP})'"
    return {
        "version": 1,
        "datacenters": [
            {
                "name": "dc-lab",
                "folders": [folder],
                "datastores": [disk["datastore"]],
                "portgroups": [{"name": "VM Network", "vlan": 0}, {"name": portgroup, "vlan": 100}],
                "clusters": [{"name": "cl-prod", "hosts": 2}],
            }
        ],
        "vms": [
            {
                "name": name,
                "cluster": "cl-prod",
                "folder": folder,
                "guest_id": "debian11_64Guest",
                "power": "poweredOff",
                "disks": [dict(disk)],
                "nics": [{"portgroup": portgroup if i % 2 else "VM Network"}],
                "attributes": {"vmwave.convert": "copy"},
            }
            for i, name in enumerate(names)
        ],
    }


@pytest.fixture(scope="module")
def hostile_lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    trap = folder / "ran-a-name"
    names = hostile_names()
    path = folder / "estate.yaml"
    path.write_text(yaml.safe_dump(estate(names), allow_unicode=True))
    saved = os.environ.get("VMWAVE_TRAP")
    os.environ["VMWAVE_TRAP"] = str(trap)  # the lab's servers too: a name run by them would spring it
    try:
        settings = lab_control.up(path, state_dir=folder / "lab")
        yield settings, names, trap
        lab_control.down(folder / "lab")
    finally:
        os.environ.pop("VMWAVE_TRAP") if saved is None else os.environ.update(VMWAVE_TRAP=saved)


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_hostile_names_are_planned_checked_rendered_and_migrated(prefect_server, hostile_lab, tmp_path):
    from prefect.settings import PREFECT_API_URL

    settings, names, trap = hostile_lab
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        **settings,
        "VMWAVE_LEDGER": str(work / "ledger.db"),
        "VMWAVE_WORKDIR": str(work / "v2v"),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
    }

    def vmwave(*argv: str) -> subprocess.CompletedProcess:
        done = subprocess.run([VMWAVE, *argv], env=env, cwd=work, capture_output=True, text=True, timeout=600)
        assert not CONTROL.search(done.stdout + done.stderr), "a control character reached the terminal"
        assert "Traceback" not in done.stderr, done.stderr
        return done

    planned = vmwave("plan", "--out", "plan.yaml")
    assert planned.returncode == 0, planned.stderr
    assert vmwave("check", "plan.yaml").returncode == 0
    doc = yaml.safe_load((work / "plan.yaml").read_text())
    [wave] = doc["waves"]
    vms = {vm["name"]: vm for vm in wave["vms"]}
    assert len(vms) == len(names)  # vCenter keeps '/' as %2f: the names come back as it reports them
    targets = [vm["target_name"] for vm in vms.values()]
    assert len(set(targets)) == len(targets) and all(is_k8s_name(t) for t in targets)
    assert vms["数据库-01"]["target_name"].startswith("01-")  # readable where it can be, told apart by a hash
    assert vms["..%2f..%2fetc%2fpasswd"]["target_name"] == "etc-passwd"

    rendered = vmwave("manifests", "--plan", "plan.yaml", "--wave", "1", "--out", "manifests")
    assert rendered.returncode == 0, rendered.stderr
    for path in files_under(work / "manifests"):
        assert path.parent == work / "manifests"
        obj = yaml.safe_load(path.read_text())
        meta = obj["metadata"]
        assert is_k8s_name(meta["name"]) or obj["kind"] == "NetworkAttachmentDefinition"
        assert all(is_label_value(v) for v in (meta.get("labels") or {}).values())
        if schema_check.available() and obj["kind"] in ("VirtualMachine", "DataVolume"):
            assert schema_check.problems(obj) == [], path.name

    migrated = vmwave("migrate", "--plan", "plan.yaml", "--wave", "1", "--report-dir", "report")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    cluster = Cluster(settings["VMWAVE_KUBECONFIG"])
    running = cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {"vmwave.io/wave": wave["id"]})
    assert sorted(vm["metadata"]["name"] for vm in running) == sorted(targets)
    assert {vm["metadata"]["annotations"]["vmwave.io/source-name"] for vm in running} == set(vms)  # kept as given

    report = (work / "report" / f"wave-{wave['id']}-report.md").read_text()
    assert report.count("| succeeded |") == len(names)
    assert not CONTROL.search(report) and "](http" not in report
    assert "\\[%2f\\] \\[bold\\]x\\[%2fbold\\]" in report  # escaped: shown as written, not as markup
    assert all(path.is_relative_to(work) for path in files_under(work))
    assert not trap.exists(), "a name ran as a command"
