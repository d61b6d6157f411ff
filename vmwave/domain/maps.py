"""Storage and network maps: where each datastore and portgroup lands on KubeVirt.

Format (``--maps FILE``, default ``$VMWAVE_MAPS``)::

    version: 1
    namespace: vmwave                 # where migrated VMs live (default vmwave)
    storage:
      - datastore: ds-ssd-01          # a datastore name, or "*" for every other one
        storage_class: rook-ceph-block-vm
        volume_mode: Block            # Block (default) or Filesystem
        access_modes: [ReadWriteMany] # default; RWX lets the VM live-migrate
    network:
      - portgroup: pg-vlan100         # a portgroup name ...
        network: vmwave/vlan100       # ... to a NetworkAttachmentDefinition (namespace/name)
        create: {type: ovn-localnet, vlan: 100, mtu: 9000, subnets: 10.100.0.0/16}  # vmwave makes the NAD
      - vlan: 200                     # ... or any portgroup with that VLAN id
        network: vmwave/vlan200
        create: {type: bridge, bridge: br-vm, vlan: 200, mtu: 9000}
      - portgroup: "VM Network"
        network: pod                  # the pod network (masquerade)
    preferences: cluster              # the cluster has kubevirt/common-instancetypes' VirtualMachineClusterPreferences
                                      # (KubeVirt >= 1.4 deploys them): VMs reference one; `inline` (default) sets its values
    cpu_model: Cascadelake-Server     # the CPU model of the standard profile ("" default: KubeVirt's host-model)
    placement:                        # where migrated VMs may run, unless the plan says otherwise per wave or VM
      node_selector: {node-role.kubernetes.io/worker: ""}
      affinity: {nodeAffinity: {...}} # a Kubernetes Affinity, as written in a Pod
    images:                           # P2 (rebuild) boot disks: a guest id or family -> a registry image
      rhel8_64Guest: docker://registry.example/vm-images/rhel8:latest
      linux: docker://registry.example/vm-images/debian12:latest
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmwave.domain.names import is_k8s_name, is_label_key, is_label_value, is_subdomain
from vmwave.domain.records import Disk, Nic
from vmwave.domain.validate import Node

MAPS_VERSION = 1


VOLUME_MODES = ("Block", "Filesystem")
PREFERENCES = ("inline", "cluster")
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod")
NAD_TYPES = ("ovn-localnet", "bridge")


@dataclass(frozen=True)
class StorageMapping:
    datastore: str
    storage_class: str
    volume_mode: str = "Block"
    access_modes: tuple[str, ...] = ("ReadWriteMany",)


@dataclass(frozen=True)
class NadSpec:
    """How vmwave creates the NetworkAttachmentDefinition a mapping names."""

    type: str  # ovn-localnet | bridge
    vlan: int | None = None
    mtu: int = 1500
    subnets: str = ""
    bridge: str = ""


@dataclass(frozen=True)
class NetworkMapping:
    network: str  # "pod" or "namespace/name" of a NetworkAttachmentDefinition
    portgroup: str | None = None
    vlan: int | None = None
    create: NadSpec | None = None


@dataclass(frozen=True)
class Maps:
    storage: tuple[StorageMapping, ...] = ()
    network: tuple[NetworkMapping, ...] = ()
    namespace: str = "vmwave"
    images: tuple[tuple[str, str], ...] = ()  # (guest id or family, registry URL) for rebuilds
    preferences: str = "inline"  # cluster: reference common-instancetypes' preferences; inline: set their values
    cpu_model: str = ""  # the standard profile's CPU model; "" leaves KubeVirt's default (host-model)
    node_selector: tuple[tuple[str, str], ...] = ()  # the default placement of migrated VMs
    affinity: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    def image_for(self, guest_id: str, family: str) -> str | None:
        found = dict(self.images)
        return found.get(guest_id) or found.get(family)

    def storage_for(self, disk: Disk) -> StorageMapping | None:
        exact = [m for m in self.storage if m.datastore == disk.datastore]
        return (exact or [m for m in self.storage if m.datastore == "*"] or [None])[0]

    def network_for(self, nic: Nic) -> NetworkMapping | None:
        for mapping in self.network:
            if mapping.portgroup is not None and mapping.portgroup == nic.portgroup:
                return mapping
        for mapping in self.network:
            if mapping.vlan is not None and mapping.vlan == nic.vlan:
                return mapping
        return None


def parse_maps(data: object, source: str) -> Maps:
    root = Node(data, source).only("version", "namespace", "storage", "network", "images", "preferences", "cpu_model",
                                   "placement")
    root.get("version", int, choices=[MAPS_VERSION])
    namespace = root.get("namespace", str, "vmwave")
    if not is_k8s_name(namespace):
        raise root.fail("namespace", f"{namespace!r} is not a valid namespace name", "use lower case letters, digits and '-'")
    storage, datastores = [], set()
    for node in root.children("storage"):
        node.only("datastore", "storage_class", "volume_mode", "access_modes")
        modes = tuple(node.get("access_modes", list, ["ReadWriteMany"]))
        for mode in modes:
            if mode not in ACCESS_MODES:
                raise node.fail("access_modes", f"{mode!r} is not an access mode", "use: " + ", ".join(ACCESS_MODES))
        datastore, storage_class = node.get("datastore", str), node.get("storage_class", str)
        if datastore in datastores:
            raise node.fail("datastore", f"{datastore!r} is mapped twice", "keep one entry per datastore")
        datastores.add(datastore)
        if not is_subdomain(storage_class):
            raise node.fail("storage_class", f"{storage_class!r} is not a StorageClass name",
                            "write the name `kubectl get storageclass` shows (lower case letters, digits, '-', '.')")
        storage.append(StorageMapping(datastore, storage_class,
                                      node.get("volume_mode", str, "Block", choices=VOLUME_MODES), modes))
    network = []
    for node in root.children("network"):
        node.only("portgroup", "vlan", "network", "create")
        portgroup, vlan = node.get("portgroup", str, None), node.get("vlan", int, None)
        for key in ("vlan",) if vlan is not None else ():
            _vlan(node, key, vlan)
        if (portgroup is None) == (vlan is None):
            raise node.fail("portgroup", "give exactly one of portgroup or vlan",
                            "match a portgroup by `portgroup: NAME` or by `vlan: ID`")
        target = node.get("network", str)
        if target != "pod" and (target.count("/") != 1 or not all(is_k8s_name(p) for p in target.split("/"))):
            raise node.fail("network", f"{target!r} is neither 'pod' nor namespace/name",
                            "write the NetworkAttachmentDefinition as namespace/name, e.g. vmwave/vlan100")
        create = None
        if "create" in node.data:
            if target == "pod":
                raise node.fail("create", "the pod network is not created by vmwave", "remove `create:`")
            c = node.child("create").only("type", "vlan", "mtu", "subnets", "bridge")
            create = NadSpec(c.get("type", str, choices=NAD_TYPES), c.get("vlan", int, vlan), c.get("mtu", int, 1500),
                             c.get("subnets", str, ""), c.get("bridge", str, ""))
            if create.vlan is not None:
                _vlan(c, "vlan", create.vlan)
            if create.type == "bridge" and not create.bridge:
                raise c.fail("bridge", "a bridge NAD needs the node bridge name", "add `bridge: br-vm` (the Linux bridge on the nodes)")
            if not 576 <= create.mtu <= 9216:
                raise c.fail("mtu", f"{create.mtu} is out of range", "use 576-9216 (9000 for jumbo frames as in the seed)")
        network.append(NetworkMapping(target, portgroup, vlan, create))
    images = root.child("images", {})
    pairs = tuple((str(k), images.get(str(k), str)) for k in images.data)
    for key, url in pairs:
        if not url.startswith("docker://"):
            raise images.fail(key, f"{url!r} is not a registry image URL", "write docker://REGISTRY/IMAGE:TAG")
    node_selector, affinity = parse_placement(root.child("placement", {}).only("node_selector", "affinity"))
    return Maps(tuple(storage), tuple(network), namespace, pairs, root.get("preferences", str, "inline", choices=PREFERENCES),
                root.get("cpu_model", str, ""), tuple(sorted(node_selector.items())), affinity)


AFFINITY_KINDS = ("nodeAffinity", "podAffinity", "podAntiAffinity")


def _vlan(node: Node, key: str, vlan: int) -> None:
    if not 0 <= vlan <= 4094:
        raise node.fail(key, f"{vlan} is not a VLAN id", "use 0-4094 (0: untagged)")


def parse_placement(node: Node) -> tuple[dict[str, str], dict[str, Any] | None]:
    """``node_selector`` (label: value) and ``affinity`` (a Kubernetes Affinity) of a maps file, wave or VM."""
    selector = node.child("node_selector", {})
    found = {str(k): selector.get(str(k), str) for k in selector.data}
    for key, value in found.items():
        if not is_label_key(key) or not is_label_value(value):
            raise selector.fail(key, f"{key}={value!r} is not a node label",
                                "keys are [prefix/]name, values at most 63 letters, digits, '-', '_' or '.'")
    affinity = node.get("affinity", dict, None)
    if affinity is not None:
        unknown = sorted(set(affinity) - set(AFFINITY_KINDS))
        if unknown:
            raise node.fail("affinity", f"{unknown[0]!r} is not part of a Kubernetes Affinity",
                            "use " + ", ".join(AFFINITY_KINDS) + ", as in a Pod's spec.affinity")
    return found, affinity
