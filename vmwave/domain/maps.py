"""Storage and network maps: where each datastore and portgroup lands on KubeVirt.

Format (``--maps FILE``)::

    version: 1
    storage:
      - datastore: ds-ssd-01          # a datastore name, or "*" for every other one
        storage_class: rook-ceph-block-vm
    network:
      - portgroup: pg-vlan100         # a portgroup name ...
        network: vmwave/vlan100       # ... to a NetworkAttachmentDefinition (namespace/name)
      - vlan: 200                     # ... or any portgroup with that VLAN id
        network: vmwave/vlan200
      - portgroup: "VM Network"
        network: pod                  # the pod network (masquerade)
"""

from __future__ import annotations

from dataclasses import dataclass

from vmwave.domain.records import Disk, Nic
from vmwave.domain.validate import Node

MAPS_VERSION = 1


@dataclass(frozen=True)
class StorageMapping:
    datastore: str
    storage_class: str


@dataclass(frozen=True)
class NetworkMapping:
    network: str  # "pod" or "namespace/name" of a NetworkAttachmentDefinition
    portgroup: str | None = None
    vlan: int | None = None


@dataclass(frozen=True)
class Maps:
    storage: tuple[StorageMapping, ...] = ()
    network: tuple[NetworkMapping, ...] = ()

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
    root = Node(data, source).only("version", "storage", "network")
    root.get("version", int, choices=[MAPS_VERSION])
    storage = []
    for node in root.children("storage"):
        node.only("datastore", "storage_class")
        storage.append(StorageMapping(node.get("datastore", str), node.get("storage_class", str)))
    network = []
    for node in root.children("network"):
        node.only("portgroup", "vlan", "network")
        portgroup, vlan = node.get("portgroup", str, None), node.get("vlan", int, None)
        if (portgroup is None) == (vlan is None):
            raise node.fail("portgroup", "give exactly one of portgroup or vlan",
                            "match a portgroup by `portgroup: NAME` or by `vlan: ID`")
        target = node.get("network", str)
        if target != "pod" and target.count("/") != 1:
            raise node.fail("network", f"{target!r} is neither 'pod' nor namespace/name",
                            "write the NetworkAttachmentDefinition as namespace/name, e.g. vmwave/vlan100")
        network.append(NetworkMapping(target, portgroup, vlan))
    return Maps(tuple(storage), tuple(network))
