"""The lab's CDI reads disks from the lab vCenter as CDI does, and its Pods run for real, through the real client."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import small_disk
from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.vsphere import sha1_thumbprint
from vmwave.domain.datastore_paths import data_file, folder_url

CDI = "cdi.kubevirt.io/v1beta1"
NS = "datapath"


@pytest.fixture(scope="module")
def cluster(lab_settings):
    c = Cluster(lab_settings["VMWAVE_KUBECONFIG"])
    c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return c


def credentials(cluster: Cluster, name: str, user: str, password: str) -> None:
    encode = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NS},
            "data": {"accessKeyId": encode(user), "secretKey": encode(password)},
        }
    )


def imported(cluster: Cluster, name: str, source: dict) -> dict:
    made = cluster.apply(
        {
            "apiVersion": CDI,
            "kind": "DataVolume",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"source": source, "storage": {"resources": {"requests": {"storage": "64Mi"}}}},
        }
    )
    return cluster.wait_for(
        CDI,
        "DataVolume",
        NS,
        name,
        lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
        60,
        "done",
        since=made,
    )


def message(dv: dict) -> str:
    return next(c for c in dv["status"]["conditions"] if c["type"] == "Running")["message"]


def volume(lab_settings: dict, name: str) -> Path:
    return Path(lab_settings["VMWAVE_KUBECONFIG"]).parent / "volumes" / NS / f"{name}.img"


@pytest.fixture(scope="module")
def disk(lab, by_name):
    """app-01's first disk, small, with 4 MiB of data: (the VM, its flat file)."""
    vm = by_name["app-01"]
    return vm, small_disk(vm, lab)


def test_https_from_the_datastore_needs_the_password_and_lands_sparse(cluster, lab, lab_settings, disk):
    vm, flat = disk
    url = folder_url(lab.url, vm.datacenter, data_file(vm.disks[0].file))
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "vcenter-ca", "namespace": NS},
            "data": {"ca.pem": lab.ca_file.read_text()},
        }
    )
    credentials(cluster, "wrong", lab.user, "not-the-password")
    refused = imported(
        cluster, "https-wrong", {"http": {"url": url, "secretRef": "wrong", "certConfigMap": "vcenter-ca"}}
    )
    assert refused["status"]["phase"] == "Failed" and "got 401" in message(refused)
    anonymous = imported(cluster, "https-anonymous", {"http": {"url": url, "certConfigMap": "vcenter-ca"}})
    assert "got 401" in message(anonymous)  # as vCenter: no datastore file without credentials

    credentials(cluster, "right", lab.user, lab.password_file.read_text().strip())
    good = imported(cluster, "https-right", {"http": {"url": url, "secretRef": "right", "certConfigMap": "vcenter-ca"}})
    assert good["status"]["phase"] == "Succeeded" and good["status"]["progress"] == "100.0%"
    landed = volume(lab_settings, "https-right")
    assert subprocess.run(["qemu-img", "compare", "-q", "-f", "raw", str(landed), str(flat)]).returncode == 0
    assert landed.stat().st_blocks * 512 < 8 << 20  # 32 MiB disk, 4 MiB of data: the zeros were not written

    missing = imported(
        cluster,
        "https-missing",
        {"http": {"url": url.replace("-flat", "-gone"), "secretRef": "right", "certConfigMap": "vcenter-ca"}},
    )
    assert "got 404" in message(missing)


def test_vddk_checks_the_thumbprint_and_the_login_then_copies_the_disk(cluster, lab, lab_settings, disk):
    vm, flat = disk
    source = {
        "url": lab.url,
        "uuid": vm.bios_uuid,
        "backingFile": vm.disks[0].file,
        "thumbprint": sha1_thumbprint(lab.url),
        "secretRef": "right",
        "initImageURL": "localhost/vddk:8",
    }
    credentials(cluster, "right", lab.user, lab.password_file.read_text().strip())
    credentials(cluster, "wrong", lab.user, "not-the-password")
    cases = {
        "vddk-login": ({**source, "secretRef": "wrong"}, "incorrect user name or password"),
        "vddk-thumbprint": ({**source, "thumbprint": "00:11"}, "does not match the server's certificate"),
        "vddk-no-image": ({**source, "initImageURL": ""}, "no VDDK image"),
        "vddk-not-its-disk": ({**source, "backingFile": "[ds-ssd-01] other/other.vmdk"}, "is not a disk of VM app-01"),
        "vddk-no-vm": ({**source, "uuid": "00000000-0000-0000-0000-000000000000"}, "no VM has BIOS UUID"),
    }
    for name, (spec, why) in cases.items():
        failed = imported(cluster, name, {"vddk": spec})
        assert failed["status"]["phase"] == "Failed" and why in message(failed), name
    good = imported(cluster, "vddk-right", {"vddk": source})
    assert good["status"]["phase"] == "Succeeded"
    landed = volume(lab_settings, "vddk-right")
    assert subprocess.run(["qemu-img", "compare", "-q", "-f", "raw", str(landed), str(flat)]).returncode == 0


def test_a_pod_runs_its_command_on_its_volumes_and_kubectl_reads_its_log(cluster, lab_settings, disk):
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "script", "namespace": NS},
            "data": {"run.sh": "wc -c < /data/disk.img; echo done > /data/../marker; exit 3\n"},
        }
    )
    volume_name = "https-right"  # imported by the HTTPS test above, or made here
    if not volume(lab_settings, volume_name).exists():
        pytest.skip("needs the HTTPS import above")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "reader", "namespace": NS},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "registry.access.redhat.com/ubi9/ubi-minimal:latest",
                    "command": ["sh", "/scripts/run.sh"],
                    "volumeMounts": [
                        {"name": "scripts", "mountPath": "/scripts"},
                        {"name": "disk", "mountPath": "/data"},
                    ],
                }
            ],
            "volumes": [
                {"name": "scripts", "configMap": {"name": "script"}},
                {"name": "disk", "persistentVolumeClaim": {"claimName": volume_name}},
            ],
        },
    }
    made = cluster.apply(pod)
    done = cluster.wait_for(
        "v1",
        "Pod",
        NS,
        "reader",
        lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
        60,
        "done",
        since=made,
    )
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert cluster.pod_log(NS, "reader", tail_lines=5).split() == [str(32 << 20)]  # the PVC's disk.img, as seen
    if shutil.which("kubectl"):  # people's own tool reads it too
        logs = subprocess.run(
            ["kubectl", "--kubeconfig", lab_settings["VMWAVE_KUBECONFIG"], "-n", NS, "logs", "reader", "--tail", "5"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert logs.split() == [str(32 << 20)]

    cluster.apply(
        {
            **pod,
            "metadata": {"name": "no-image", "namespace": NS},
            "spec": {**pod["spec"], "containers": [{**pod["spec"]["containers"][0], "image": "example/x:1"}]},
        }
    )
    waiting = cluster.wait_for(
        "v1", "Pod", NS, "no-image", lambda o: bool(o["status"].get("containerStatuses")), 30, "waiting"
    )
    assert waiting["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"


def test_a_job_retries_its_pod_until_the_backoff_limit(cluster):
    made = cluster.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "flaky", "namespace": NS},
            "spec": {
                "backoffLimit": 1,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                "image": "registry.access.redhat.com/ubi9/ubi-minimal",
                                "command": ["sh", "-c", "exit 1"],
                            }
                        ],
                    }
                },
            },
        }
    )
    done = cluster.wait_for(
        "batch/v1",
        "Job",
        NS,
        "flaky",
        lambda o: any(
            c["type"] == "Failed" and c["status"] == "True" for c in (o.get("status") or {}).get("conditions", [])
        ),
        60,
        "failed",
        since=made,
    )
    assert done["status"]["failed"] == 2  # the first pod and one retry
    pods = cluster.find("v1", "Pod", NS, {"job-name": "flaky"})
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
