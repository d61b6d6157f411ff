"""The Pod that converts a guest in place on its imported volumes, as Forklift's conversion pod does.

It runs ``virt-v2v-in-place -i libvirtxml`` from the conversion image, with
every PVC of the VM attached (Filesystem volumes mounted at
``/mnt/disks/diskN`` holding CDI's ``disk.img``, Block volumes as
``/dev/blockN``) and a libvirt domain description of the source VM, held in a
ConfigMap, naming them. The guest-OS plugin's options and environment (e.g.
``VIRTIO_WIN``) are passed as they are, with ``--mac`` for each static address
(``static_ips``). The plugin's scripts and their data files go into the ConfigMap too; the scripts run in the
converted guest after ``virt-v2v-in-place``, in one ``guestfish`` (which, unlike
``virt-customize --run``, prints what they say into the pod's log).
"""

from __future__ import annotations

import re
from shlex import quote
from typing import Any
from xml.sax.saxutils import quoteattr

from vmwave.domain.manifests import source_labels
from vmwave.domain.maps import Maps
from vmwave.domain.names import k8s_name
from vmwave.domain.pod_placement import ConversionPods
from vmwave.domain.records import SourceVM
from vmwave.domain.static_ips import mac_options
from vmwave.errors import VmwaveError

COMPONENT = {"app.kubernetes.io/component": "guest-conversion"}
XML_DIR = "/mnt/v2v"
INPUT_XML = "input.xml"
SCRIPT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
DEFAULT_REQUESTS = {"cpu": "1", "memory": "1Gi"}  # virt-v2v's appliance takes ~1 GiB


def conversion_name(target: str) -> str:
    return k8s_name(f"{target}-v2v", 63)


def disk_path(index: int, volume_mode: str) -> str:
    """Where disk ``index`` is in the pod."""
    return f"/dev/block{index}" if volume_mode == "Block" else f"/mnt/disks/disk{index}/disk.img"


def libvirt_xml(vm: SourceVM, modes: list[str]) -> str:
    """The source VM as a libvirt domain, its disks at their paths in the pod: virt-v2v's input."""
    disks = []
    for index, mode in enumerate(modes):
        kind, attr = ("block", "dev") if mode == "Block" else ("file", "file")
        disks.append(
            f"    <disk type='{kind}' device='disk'><driver name='qemu' type='raw'/>"
            f"<source {attr}={quoteattr(disk_path(index, mode))}/>"
            f"<target dev='sd{chr(ord('a') + index)}' bus='scsi'/></disk>"
        )
    nics = [
        f"    <interface type='bridge'><mac address={quoteattr(nic.mac)}/><source bridge='br0'/>"
        f"<model type={quoteattr(nic.adapter or 'vmxnet3')}/></interface>"
        for nic in vm.nics
        if nic.mac
    ]
    firmware = " firmware='efi'" if vm.firmware == "efi" else ""
    return "\n".join(
        [
            "<domain type='kvm'>",
            f"  <name>{k8s_name(vm.name, 63)}</name>",
            f"  <memory unit='MiB'>{vm.memory_mb or 1024}</memory>",
            f"  <vcpu>{vm.cpus or 1}</vcpu>",
            f"  <os{firmware}><type arch='x86_64'>hvm</type></os>",
            "  <devices>",
            *disks,
            *nics,
            "  </devices>",
            "</domain>",
            "",
        ]
    )


def command(scripts: dict[str, str], data: dict[str, str], modes: list[str]) -> list[str]:
    """``virt-v2v-in-place`` (the pod's args are its own); with scripts, a shell that then uploads each script and
    data file into the guest and runs the scripts, all in one appliance. Only file names vmwave checked reach it."""
    if not scripts:
        return ["virt-v2v-in-place"]
    bad = [name for name in (*scripts, *data) if not SCRIPT_NAME.match(name) or name == INPUT_XML]
    if bad or set(scripts) & set(data):
        raise VmwaveError(
            f"a guest-OS plugin's conversion file is named {(bad or sorted(set(scripts) & set(data)))[0]!r}",
            "name scripts and data files apart, with letters, digits, '.', '_' and '-' only (a ConfigMap key)",
        )
    disks = " ".join(f"-a {quote(disk_path(i, mode))}" for i, mode in enumerate(modes))
    uploads = "".join(f"upload {XML_DIR}/{name} /tmp/{name}\n" for name in data)
    runs = "".join(
        f'upload {XML_DIR}/{name} /tmp/{name}\nsh "/bin/sh /tmp/{name}"\nrm /tmp/{name}\n' for name in scripts
    )
    cleanup = "".join(f"rm /tmp/{name}\n" for name in data)
    return [
        "/bin/sh",
        "-ec",
        f'virt-v2v-in-place "$@"\nguestfish --rw --format=raw {disks} -i <<"END"\n{uploads}{runs}{cleanup}END',
        "virt-v2v-in-place",
    ]


def conversion_objects(
    vm: SourceVM,
    target: str,
    wave: str,
    maps: Maps,
    image: str,
    options: tuple[str, ...],
    env: dict[str, str],
    claims: list[str],
    scripts: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    placement: ConversionPods = ConversionPods(),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ConfigMap holding the libvirt XML (and the scripts) and the Pod that converts the guest (on the PVCs
    ``claims``, one per disk, as the builder named them), placed as the plan or maps say; both labelled for the
    rollback."""
    name, labels = conversion_name(target), {**source_labels(vm, wave), **COMPONENT}
    modes = [maps.storage_for(disk).volume_mode for disk in vm.disks]
    scripts, data = scripts or {}, data or {}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": maps.namespace, "labels": labels},
        "data": {INPUT_XML: libvirt_xml(vm, modes), **scripts, **data},
    }
    mounts: list[dict[str, str]] = [{"name": "libvirt-xml", "mountPath": XML_DIR, "readOnly": True}]
    devices: list[dict[str, str]] = []
    volumes: list[dict[str, Any]] = [{"name": "libvirt-xml", "configMap": {"name": name}}]
    for index, mode in enumerate(modes):
        volume = f"disk{index}"
        volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": claims[index]}})
        if mode == "Block":
            devices.append({"name": volume, "devicePath": disk_path(index, mode)})
        else:
            mounts.append({"name": volume, "mountPath": f"/mnt/disks/disk{index}"})
    container: dict[str, Any] = {
        "name": "virt-v2v",
        "image": image,
        "command": command(scripts, data, modes),
        "args": ["-i", "libvirtxml", f"{XML_DIR}/{INPUT_XML}", *options, *mac_options(vm)],
        "env": [
            {"name": "LIBGUESTFS_BACKEND", "value": "direct"},
            *({"name": k, "value": v} for k, v in sorted(env.items())),
        ],
        "resources": {"requests": dict(DEFAULT_REQUESTS)},
        "volumeMounts": mounts,
    }
    if devices:
        container["volumeDevices"] = devices
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": maps.namespace, "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [container], "volumes": volumes},
    }
    return config_map, placement.place(pod)
