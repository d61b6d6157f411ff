"""Where vmwave's own pods run and which network carries the disks: Forklift's ``convertorNodeSelector``,
``convertorAffinity``, ``convertorLabels``, ``conversionTempStorageClass/Size`` and ``transferNetwork``.

The maps give the defaults (``conversion_pods:``, ``transfer_network:``), a wave or a VM of the plan its own.
Conversion pods are vmwave's, so they take all of it. CDI makes the importer pods: it copies a DataVolume's
``k8s.v1.cni.cncf.io/networks`` annotation to its importer (the transfer network, per VM), but places every
importer from its own CR (``spec.workload``: node selector, affinity, tolerations); no DataVolume can name its
importer's nodes, so that placement is the cluster's, set once on the CDI CR.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from vmwave.domain.names import is_k8s_name, is_label_key, is_label_value, is_subdomain
from vmwave.domain.validate import problem

TRANSFER_NETWORK_ANNOTATION = "k8s.v1.cni.cncf.io/networks"  # CDI's AnnPodNetwork, copied to the importer pod
SCRATCH_PATH = "/var/tmp"  # where virt-v2v and libguestfs keep their temporary files (TMPDIR)
AFFINITY_KINDS = ("nodeAffinity", "podAffinity", "podAntiAffinity")
RESERVED_LABEL_PREFIXES = ("vmwave.io/", "app.kubernetes.io/")  # vmwave finds its pods by these: not the user's


def checked_labels(labels: dict[str, str], what: str) -> dict[str, str]:
    """Labels as Kubernetes takes them, or the model's problem naming the first that is not."""
    for key, value in labels.items():
        if not is_label_key(key) or not is_label_value(value):
            raise problem(
                f"{key}={value!r} is not a {what}",
                "keys are [prefix/]name, values at most 63 letters, digits, '-', '_' or '.'",
                key,
            )
    return labels


def _nad(value: str) -> str:
    if value.count("/") != 1 or not all(is_k8s_name(part) for part in value.split("/")):
        raise problem(
            f"{value!r} is not a NetworkAttachmentDefinition as namespace/name",
            "write it as namespace/name, e.g. vmwave/storage-net",
        )
    return value


NadRef = Annotated[str, AfterValidator(_nad)]
Quantity = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,5}(Mi|Gi|Ti)$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Toleration(_Model):
    """A Kubernetes toleration, as a Pod's ``spec.tolerations`` holds one."""

    key: Annotated[str, StringConstraints(max_length=316)] = ""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: Annotated[str, StringConstraints(max_length=63)] = ""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    toleration_seconds: Annotated[int, Field(ge=0)] | None = None

    def pod(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "key": self.key,
            "operator": self.operator,
            "value": self.value,
            "effect": self.effect,
            "tolerationSeconds": self.toleration_seconds,
        }
        return {k: v for k, v in found.items() if v not in ("", None)}


class Scratch(_Model):
    """Scratch space for a conversion: a volume of this StorageClass and size, made with the pod and gone with it."""

    storage_class: Annotated[str, AfterValidator(lambda v: v if is_subdomain(v) else _bad_class(v))]
    size: Quantity = "20Gi"


def _bad_class(value: str) -> str:
    raise problem(f"{value!r} is not a StorageClass name", "write the name `kubectl get storageclass` shows")


class ConversionPods(_Model):
    """Where a VM's conversion pod runs, its extra labels and its scratch volume."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    affinity: dict[str, Any] | None = None
    tolerations: Annotated[list[Toleration], Field(max_length=50)] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    scratch: Scratch | None = None

    @field_validator("node_selector")
    @classmethod
    def _selector(cls, value: dict[str, str]) -> dict[str, str]:
        return checked_labels(value, "node label")

    @field_validator("labels")
    @classmethod
    def _own_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key.startswith(RESERVED_LABEL_PREFIXES):
                raise problem(
                    f"{key} is a label vmwave sets itself", "use a label outside vmwave.io/ and app.kubernetes.io/", key
                )
        return checked_labels(value, "Kubernetes label")

    @field_validator("affinity")
    @classmethod
    def _affinity(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        unknown = sorted(set(value or {}) - set(AFFINITY_KINDS))
        if unknown:
            raise problem(
                f"{unknown[0]!r} is not part of a Kubernetes Affinity",
                "use " + ", ".join(AFFINITY_KINDS) + ", as in a Pod's spec.affinity",
            )
        return value

    def place(self, pod: dict[str, Any]) -> dict[str, Any]:
        """``pod`` with this placement, labels and scratch volume."""
        pod = copy.deepcopy(pod)
        pod["metadata"]["labels"] = {**self.labels, **pod["metadata"]["labels"]}
        spec = pod["spec"]
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        if self.affinity:
            spec["affinity"] = copy.deepcopy(self.affinity)
        if self.tolerations:
            spec["tolerations"] = [t.pod() for t in self.tolerations]
        if self.scratch is not None:
            spec["volumes"].append(
                {
                    "name": "scratch",
                    "ephemeral": {
                        "volumeClaimTemplate": {
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "volumeMode": "Filesystem",
                                "storageClassName": self.scratch.storage_class,
                                "resources": {"requests": {"storage": self.scratch.size}},
                            }
                        }
                    },
                }
            )
            for container in spec["containers"]:
                container["volumeMounts"].append({"name": "scratch", "mountPath": SCRATCH_PATH})
                container["env"].append({"name": "TMPDIR", "value": SCRATCH_PATH})
        return pod


def with_transfer_network(datavolume: dict[str, Any], network: str | None) -> dict[str, Any]:
    """A DataVolume whose importer pod also joins ``network`` (namespace/name), which carries the disk traffic."""
    if not network:
        return datavolume
    meta = datavolume["metadata"]
    return {
        **datavolume,
        "metadata": {**meta, "annotations": {**(meta.get("annotations") or {}), TRANSFER_NETWORK_ANNOTATION: network}},
    }
