"""The resources the lab API serves, as discovery lists them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    status: bool = False  # has a status subresource
    short: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"


RESOURCES = (
    Resource("", "v1", "Namespace", "namespaces", namespaced=False, status=True, short=("ns",)),
    Resource("", "v1", "Node", "nodes", namespaced=False, status=True, short=("no",)),
    Resource("", "v1", "Secret", "secrets"),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", short=("sa",)),
    Resource("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    Resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    Resource("", "v1", "ConfigMap", "configmaps", short=("cm",)),
    Resource("", "v1", "Event", "events", short=("ev",)),
    Resource("", "v1", "Pod", "pods", status=True, short=("po",)),
    Resource("batch", "v1", "Job", "jobs", status=True),
    Resource("", "v1", "ResourceQuota", "resourcequotas", status=True, short=("quota",)),
    Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", status=True, short=("pvc",)),
    Resource("storage.k8s.io", "v1", "StorageClass", "storageclasses", namespaced=False, short=("sc",)),
    Resource(
        "k8s.cni.cncf.io",
        "v1",
        "NetworkAttachmentDefinition",
        "network-attachment-definitions",
        short=("net-attach-def",),
    ),
    Resource("cdi.kubevirt.io", "v1beta1", "DataVolume", "datavolumes", status=True, short=("dv",)),
    Resource("upload.cdi.kubevirt.io", "v1beta1", "UploadTokenRequest", "uploadtokenrequests", status=True),
    Resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines", status=True, short=("vm",)),
    Resource("kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances", status=True, short=("vmi",)),
    Resource(
        "kubevirt.io",
        "v1",
        "VirtualMachineInstanceMigration",
        "virtualmachineinstancemigrations",
        status=True,
        short=("vmim",),
    ),
    Resource("kubevirt.io", "v1", "KubeVirt", "kubevirts", status=True, short=("kv",)),
    Resource(
        "instancetype.kubevirt.io",
        "v1beta1",
        "VirtualMachineClusterPreference",
        "virtualmachineclusterpreferences",
        namespaced=False,
        short=("vmcps",),
    ),
)

BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}


def groups() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for r in RESOURCES:
        if r.group and r.version not in found.setdefault(r.group, []):
            found[r.group].append(r.version)
    return found
