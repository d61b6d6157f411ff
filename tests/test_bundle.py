"""`vmwave bundle` of a failed VM: its logs, objects, events and ledger rows, and no secret, even one a person
wrote into the plan; its conversion pod and DataVolumes, read back from the lab cluster, placed as the maps say."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tarfile
from pathlib import Path

import yaml

from helpers import VMWAVE
from vmwave.adapters.kubernetes import Cluster


def test_the_bundle_of_a_failed_vm_holds_what_explains_it_and_no_secret(prefect_server, wave_env, planned, tmp_path):
    from prefect.settings import PREFECT_API_URL

    plan, doc, wave = planned
    failing = wave["vms"][0]
    password = Path(wave_env["VMWAVE_VCENTER_PASSWORD_FILE"]).read_text().strip()
    tokens = list(json.loads((Path(wave_env["VMWAVE_KUBECONFIG"]).parent / "kube-tokens.json").read_text()).values())
    failing["reason"] = f"someone pasted the vCenter password here: {password}"  # a secret where none belongs
    failing["convert"] = "virt-v2v"  # the lab's disks hold no guest: the real virt-v2v-in-place fails on them
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    maps = yaml.safe_load(Path(wave_env["VMWAVE_MAPS"]).read_text())
    placed = tmp_path / "maps.yaml"  # conversion pods placed, disks copied over a network of their own
    placed.write_text(
        yaml.safe_dump(
            {
                **maps,
                "transfer_network": "vmwave/storage-net",
                "conversion_pods": {
                    "node_selector": {"kubernetes.io/os": "linux"},
                    "labels": {"cost-center": "migration"},
                    "tolerations": [{"key": "dedicated", "value": "migration", "effect": "NoSchedule"}],
                    "scratch": {"storage_class": maps["storage"][0]["storage_class"], "size": "10Gi"},
                },
            }
        )
    )
    cluster = Cluster(wave_env["VMWAVE_KUBECONFIG"])
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vmwave"}})
    cluster.apply(
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "storage-net", "namespace": "vmwave"},
            "spec": {"config": '{"cniVersion": "0.3.1", "type": "macvlan", "master": "eth1"}'},
        }
    )
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "VMWAVE_MAPS": str(placed)}
    try:
        ran = subprocess.run(
            [
                VMWAVE,
                "migrate",
                "--plan",
                str(plan),
                "--wave",
                wave["id"],
                "--keep-for-debug",
                "--report-dir",
                str(tmp_path),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert ran.returncode == 1, ran.stdout + ran.stderr  # the one VM failed, the others went on
        out = tmp_path / "bundle.tar.gz"
        made = subprocess.run(
            [
                VMWAVE,
                "bundle",
                "--plan",
                str(plan),
                "--wave",
                wave["id"],
                "--vm",
                failing["name"],
                "--out",
                str(out),
                "--report-dir",
                str(tmp_path),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert made.returncode == 0, made.stderr
        with tarfile.open(out) as tar:
            files = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    finally:
        subprocess.run(
            [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]], env=env, capture_output=True, timeout=600
        )
    where = json.loads(files["index.json"])[failing["name"]]
    assert json.loads(files["index.json"]) == {failing["name"]: where}  # only the VM asked for
    ledger = json.loads(files[f"{where}/ledger.json"])
    assert any(s["step"] == "convert" and s["status"] == "failed" for s in ledger["steps"])
    objects = yaml.safe_load(files[f"{where}/objects.yaml"])
    kinds = {o["kind"] for o in objects}
    assert {"DataVolume", "PersistentVolumeClaim", "Pod", "ConfigMap"} <= kinds and "Secret" not in kinds
    [pod] = [o for o in objects if o["kind"] == "Pod"]  # the conversion pod as the lab cluster holds it
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "migration", "effect": "NoSchedule"}
    ]
    assert pod["metadata"]["labels"]["cost-center"] == "migration"
    assert any(v["name"] == "scratch" and "ephemeral" in v for v in pod["spec"]["volumes"])
    assert all(
        dv["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] == "vmwave/storage-net"
        for dv in objects
        if dv["kind"] == "DataVolume"
    )
    assert files[f"{where}/events.txt"].strip()  # CDI's and KubeVirt's events about its objects
    assert json.loads(files[f"{where}/vcenter.json"])["instance_uuid"] == failing["uuid"]
    assert "virt-v2v" in files[f"{where}/conversion.log"]  # what the worker kept of the conversion
    assert any(name.startswith(f"{where}/pods/") for name in files)  # and the conversion pod's own log
    assert f"wave-{wave['id']}-report.md" in files and "plan.yaml" in files
    everything = "\n".join(files.values())
    for secret in [password, *tokens]:
        assert secret not in everything and base64.b64encode(secret.encode()).decode() not in everything
    assert "someone pasted the vCenter password here: [redacted]" in files["plan.yaml"]
    assert oct(out.stat().st_mode & 0o777) == "0o600"
