"""A bootable disk runs as a real QEMU process in the lab KubeVirt; its own guest agent fills the status."""

import os
import shutil
import time
from pathlib import Path

import pytest

from helpers import kubevirt_metrics
from vmwave.adapters.kubernetes import Cluster
from vmwave_lab import guests
from vmwave_lab.guests import kernel
from vmwave_tasks.smoke import KINDS

pytestmark = pytest.mark.skipif(
    not (
        shutil.which("qemu-system-x86_64")
        and shutil.which("extlinux")
        and list(Path("/boot").glob("vmlinuz-*"))
        and os.geteuid() == 0
    ),
    reason=f"needs root and: apt-get install -y {guests.PACKAGES}",
)

NS = "real"


def qemu_running(name: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f"-name\0{NS}.{name}\0".encode() in cmdline.read_bytes():
                return True
        except OSError:
            pass
    return False


def test_a_bootable_disk_boots_and_its_agent_reports(kube, tmp_path):
    image = guests.tiny_guest(Path.home() / ".cache" / "vmwave" / "guests")
    registry = kube.state_dir / "registry"
    registry.mkdir(exist_ok=True)
    shutil.copyfile(image, registry / "tiny_1.img")
    cluster = Cluster(kube.kubeconfig)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    cluster.apply(
        {
            "apiVersion": "cdi.kubevirt.io/v1beta1",
            "kind": "DataVolume",
            "metadata": {"name": "tiny-root", "namespace": NS},
            "spec": {
                "source": {"registry": {"url": "docker://registry.lab/tiny:1"}},
                "storage": {"volumeMode": "Block", "resources": {"requests": {"storage": "64Mi"}}},
            },
        }
    )
    cluster.apply(
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "tiny", "namespace": NS, "annotations": {"lab.vmwave.io/forward-ports": "8080"}},
            "spec": {
                "runStrategy": "Always",
                "template": {
                    "spec": {
                        "domain": {
                            "cpu": {"cores": 1},
                            "memory": {"guest": "256Mi"},
                            "devices": {
                                "disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                                "interfaces": [{"name": "nic0", "masquerade": {}, "macAddress": "00:50:56:be:ef:01"}],
                            },
                        },
                        "networks": [{"name": "nic0", "pod": {}}],
                        "volumes": [{"name": "root", "dataVolume": {"name": "tiny-root"}}],
                    }
                },
            },
        }
    )
    vmi = cluster.wait_for(
        "kubevirt.io/v1",
        "VirtualMachineInstance",
        NS,
        "tiny",
        lambda o: (
            o is not None
            and any(c["type"] == "AgentConnected" for c in (o.get("status") or {}).get("conditions", []))
            and any(i.get("ipAddress") for i in o["status"].get("interfaces", []))
        ),
        240,
        "agent connected and an address reported",
    )
    assert qemu_running("tiny")
    assert vmi["status"]["guestOSInfo"]["id"] == "vmwave-tiny"
    assert vmi["status"]["guestOSInfo"]["kernelRelease"] == kernel()[1]  # the guest's own `uname -r`: the lab's kernel
    nic = vmi["status"]["interfaces"][0]
    assert (nic["mac"], nic["ipAddress"], nic["interfaceName"]) == ("00:50:56:be:ef:01", "10.0.2.15", "eth0")
    started = [e for e in cluster.resource("v1", "Event").get(namespace=NS).items if e.reason == "QemuStarted"]
    assert started and "accel=" in started[0].message
    # vmwave's own smoke checks, through the lab's forward of the guest's port 8080
    assert KINDS["tcp"]({"tcp": 8080}, vmi, None, 5).startswith("connected to 127.0.0.1:")
    assert KINDS["http"]({"http": "http://{ip}:8080/", "status": 200}, vmi, None, 5).endswith("answered 200")
    assert (
        KINDS["agent"]({"agent": "os", "expect": {"id": "^vmwave-tiny$"}}, vmi, None, 5)
        == "agent reports vmwave tiny 1"
    )
    with pytest.raises(OSError, match="expected 404"):
        KINDS["http"]({"http": "http://{ip}:8080/", "status": 404}, vmi, None, 5)

    # KubeVirt's metrics for it, from the QEMU process and QMP: real, and said to be
    found = kubevirt_metrics(kube, name="tiny")
    labels = {"name": "tiny", "namespace": NS, "node": vmi["status"]["nodeName"], "source": "qemu"}
    assert found[("kubevirt_vmi_cpu_usage_seconds_total", frozenset(labels.items()))] > 0  # it booted a kernel
    assert found[("kubevirt_vmi_storage_iops_read_total", frozenset({**labels, "drive": "root"}.items()))] > 0
    assert found[("kubevirt_vmi_memory_available_bytes", frozenset(labels.items()))] == 256 << 20  # the balloon's

    cluster.patch("kubevirt.io/v1", "VirtualMachine", NS, "tiny", {"spec": {"runStrategy": "Halted"}})
    cluster.wait_for("kubevirt.io/v1", "VirtualMachineInstance", NS, "tiny", lambda o: o is None, 60, "deleted")
    deadline = time.monotonic() + 30
    while qemu_running("tiny") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not qemu_running("tiny")
