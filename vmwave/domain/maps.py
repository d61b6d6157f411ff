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
                                      # (KubeVirt >= 1.4 deploys them): VMs reference one;
                                      # `inline` (default) sets its values
    cpu_model: Cascadelake-Server     # the CPU model of the standard profile ("" default: KubeVirt's host-model)
    placement:                        # where migrated VMs may run, unless the plan says otherwise per wave or VM
      node_selector: {node-role.kubernetes.io/worker: ""}
      affinity: {nodeAffinity: {...}} # a Kubernetes Affinity, as written in a Pod
    conversion_pods:                  # where conversion pods run (vmwave.domain.pod_placement), unless the plan says
      node_selector: {vmwave.io/converter: "true"}
      tolerations: [{key: dedicated, operator: Equal, value: migration, effect: NoSchedule}]
      labels: {cost-center: migration}
      scratch: {storage_class: local-nvme, size: 50Gi}   # a scratch volume for virt-v2v's temporary files
    transfer_network: vmwave/storage-net   # a NAD CDI's importers copy disks over, not the pod network
    images:                           # P2 (rebuild) boot disks: a guest id or family -> a registry image
      rhel8_64Guest: docker://registry.example/vm-images/rhel8:latest
      linux: docker://registry.example/vm-images/debian12:latest
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from vmwave.domain.names import is_k8s_name, is_label_key, is_label_value, is_subdomain
from vmwave.domain.pod_placement import AFFINITY_KINDS, ConversionPods, NadRef
from vmwave.domain.records import Disk, Nic
from vmwave.domain.validate import Node, input_errors, problem
from vmwave.errors import InputError

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
    conversion_pods: ConversionPods = field(default_factory=ConversionPods, hash=False, compare=False)
    transfer_network: str = ""  # the NAD (namespace/name) CDI's importers copy disks over; "" the pod network

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


Vlan = Annotated[int, Field(ge=0, le=4094)]
Short = Annotated[str, StringConstraints(max_length=253)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Storage(_Model):
    datastore: Short
    storage_class: Annotated[
        str,
        AfterValidator(
            lambda v: _named(
                v,
                is_subdomain,
                "a StorageClass name",
                "write the name `kubectl get storageclass` shows (lower case letters, digits, '-', '.')",
            )
        ),
    ]
    volume_mode: Literal["Block", "Filesystem"] = "Block"
    access_modes: list[Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"]] = Field(
        default_factory=lambda: ["ReadWriteMany"], min_length=1
    )


class _Create(_Model):
    type: Literal["ovn-localnet", "bridge"]
    vlan: Vlan | None = None
    mtu: Annotated[int, Field(ge=576, le=9216)] = 1500
    subnets: Short = ""
    bridge: Short = ""

    @model_validator(mode="after")
    def _bridge(self) -> "_Create":
        if self.type == "bridge" and not self.bridge:
            raise problem(
                "a bridge NAD needs the node bridge name",
                "add `bridge: br-vm` (the Linux bridge on the nodes)",
                "bridge",
            )
        return self


class _Network(_Model):
    portgroup: Short | None = None
    vlan: Vlan | None = None
    network: Short
    create: _Create | None = None

    @model_validator(mode="after")
    def _one_target(self) -> "_Network":
        if (self.portgroup is None) == (self.vlan is None):
            raise problem(
                "give exactly one of portgroup or vlan",
                "match a portgroup by `portgroup: NAME` or by `vlan: ID`",
                "portgroup",
            )
        if self.network != "pod" and (
            self.network.count("/") != 1 or not all(is_k8s_name(p) for p in self.network.split("/"))
        ):
            raise problem(
                f"{self.network!r} is neither 'pod' nor namespace/name",
                "write the NetworkAttachmentDefinition as namespace/name, e.g. vmwave/vlan100",
                "network",
            )
        if self.create is not None and self.network == "pod":
            raise problem("the pod network is not created by vmwave", "remove `create:`", "create")
        return self


class _Placement(_Model):
    node_selector: dict[Short, Short] = Field(default_factory=dict)
    affinity: dict[str, Any] | None = None


class MapsFile(_Model):
    """The maps file as written (see the module's docstring)."""

    version: Literal[1]
    namespace: Annotated[
        str,
        AfterValidator(
            lambda v: _named(v, is_k8s_name, "a valid namespace name", "use lower case letters, digits and '-'")
        ),
    ] = "vmwave"
    storage: list[_Storage] = Field(default_factory=list)
    network: list[_Network] = Field(default_factory=list)
    images: dict[
        Short,
        Annotated[
            str,
            AfterValidator(
                lambda v: _named(
                    v,
                    lambda u: u.startswith("docker://") and len(u) <= 512,
                    "a registry image URL",
                    "write docker://REGISTRY/IMAGE:TAG",
                )
            ),
        ],
    ] = Field(default_factory=dict)
    preferences: Literal["inline", "cluster"] = "inline"
    cpu_model: Short = ""
    placement: _Placement = Field(default_factory=_Placement)
    conversion_pods: ConversionPods = Field(default_factory=ConversionPods)
    transfer_network: NadRef = ""

    @model_validator(mode="before")
    @classmethod
    def _checked_placement(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("placement"), dict):
            try:
                parse_placement(Node(data["placement"], "", "placement"))
            except InputError as exc:
                raise problem(exc.problem, exc.fix, exc.field) from None
        return data

    @model_validator(mode="after")
    def _once(self) -> "MapsFile":
        seen: set[str] = set()
        for index, entry in enumerate(self.storage):
            if entry.datastore in seen:
                raise problem(
                    f"{entry.datastore!r} is mapped twice",
                    "keep one entry per datastore",
                    f"storage[{index}].datastore",
                )
            seen.add(entry.datastore)
        return self

    def maps(self) -> Maps:
        network = tuple(
            NetworkMapping(
                n.network,
                n.portgroup,
                n.vlan,
                None
                if n.create is None
                else NadSpec(
                    n.create.type,
                    n.vlan if n.create.vlan is None else n.create.vlan,
                    n.create.mtu,
                    n.create.subnets,
                    n.create.bridge,
                ),
            )
            for n in self.network
        )
        return Maps(
            tuple(
                StorageMapping(s.datastore, s.storage_class, s.volume_mode, tuple(s.access_modes)) for s in self.storage
            ),
            network,
            self.namespace,
            tuple(self.images.items()),
            self.preferences,
            self.cpu_model,
            tuple(sorted(self.placement.node_selector.items())),
            self.placement.affinity,
            self.conversion_pods,
            self.transfer_network,
        )


def _named(value: str, valid: Any, what: str, fix: str) -> str:
    if not valid(value):
        raise problem(f"{value!r} is not {what}", fix)
    return value


FIXES = {
    "version": f"use one of: {MAPS_VERSION}",
    "mtu": "use 576-9216 (9000 for jumbo frames as in the seed)",
    "vlan": "use 0-4094 (0: untagged)",
    "access_modes": "use: " + ", ".join(ACCESS_MODES),
}


def parse_maps(data: object, source: str) -> Maps:
    """A maps document, checked: every problem at once, each with its field and fix."""
    try:
        return MapsFile.model_validate(data).maps()
    except ValidationError as exc:
        raise input_errors(exc, source, MapsFile, FIXES) from None


def parse_placement(node: Node) -> tuple[dict[str, str], dict[str, Any] | None]:
    """``node_selector`` (label: value) and ``affinity`` (a Kubernetes Affinity) of a maps file, wave or VM."""
    selector = node.child("node_selector", {})
    found = {str(k): selector.get(str(k), str) for k in selector.data}
    for key, value in found.items():
        if not is_label_key(key) or not is_label_value(value):
            raise selector.fail(
                key,
                f"{key}={value!r} is not a node label",
                "keys are [prefix/]name, values at most 63 letters, digits, '-', '_' or '.'",
            )
    affinity = node.get("affinity", dict, None)
    if affinity is not None:
        unknown = sorted(set(affinity) - set(AFFINITY_KINDS))
        if unknown:
            raise node.fail(
                "affinity",
                f"{unknown[0]!r} is not part of a Kubernetes Affinity",
                "use " + ", ".join(AFFINITY_KINDS) + ", as in a Pod's spec.affinity",
            )
    return found, affinity
