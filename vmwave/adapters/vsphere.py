"""vCenter through pyvmomi: verified connections and a one-round-trip inventory.

The inventory is one PropertyCollector retrieval over a ContainerView (paged
with the continuation token), never an attribute read per VM: pyvmomi's lazy
attributes cost a round trip each (18 s for 2000 VMs locally, minutes over a WAN).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import socket
import ssl
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from vmwave.adapters.documents import read_secret
from vmwave.adapters.prefect_api.secrets import load_secret
from vmwave.adapters.vsphere_tags import read_tags
from vmwave.domain.guests import guest_os
from vmwave.domain.build import SourceAccess
from vmwave.domain.records import Disk, GuestDisk, Nic, Snapshot, SourceVM
from vmwave.errors import ConnectionFailed, InputError
from vmwave.settings import Settings, VCenter

log = logging.getLogger(__name__)
PAGE_SIZE = 500
REFUSED, UNAVAILABLE = "vcenter-refused", "vcenter-unavailable"  # causes in vmwave.domain.diagnosis

VM_PROPERTIES = [
    "name",
    "parent",
    "config.instanceUuid",
    "config.uuid",
    "config.guestId",
    "config.guestFullName",
    "config.firmware",
    "config.bootOptions",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.hardware.device",
    "config.template",
    "config.changeTrackingEnabled",
    "runtime.powerState",
    "runtime.host",
    "guest.toolsRunningStatus",
    "guest.toolsStatus",
    "guest.net",
    "guest.ipAddress",
    "snapshot",
    "customValue",
    "config.cpuHotAddEnabled",
    "config.cpuHotRemoveEnabled",
    "config.memoryHotAddEnabled",
    "config.cpuAffinity",
    "config.extraConfig",
    "guest.hostName",
    "runtime.consolidationNeeded",
    "runtime.faultToleranceState",
    "guest.disk",
    "guest.ipStack",
]
CHECKED_EXTRA_CONFIG = re.compile(r"^(numa\.nodeAffinity|disk\.EnableUUID|(scsi|sata|nvme|ide)\d+:\d+\.ctkEnabled)$")
# Everything else the records need, fetched in the same call: a few objects per host and folder.
CONTEXT_PROPERTIES = {
    vim.Folder: ["name", "parent"],
    vim.Datacenter: ["name", "parent"],
    vim.ComputeResource: ["name", "parent", "configurationEx"],
    vim.HostSystem: [
        "name",
        "parent",
        "config.network.portgroup",
        "runtime.inMaintenanceMode",
        "runtime.connectionState",
    ],
    vim.Datastore: ["name"],
    vim.Network: ["name"],
    vim.dvs.DistributedVirtualPortgroup: ["name", "key", "config.defaultPortConfig"],
}


def password(target: VCenter) -> str:
    """The vCenter password: from the Secret block when one is named (a deployment's parameter names it on purpose),
    else the file."""
    if target.secret_block:
        return load_secret(target.secret_block, "vcenter")
    if target.password_file is not None:
        return read_secret(target.password_file, "password")
    raise InputError(
        "vCenter password",
        "",
        "no password source given",
        "set VMWAVE_VCENTER_PASSWORD_FILE (a file) or --secret-block (a Prefect Secret block)",
    )


def source_access(settings: Settings) -> SourceAccess:
    """How CDI reaches vSphere: vCenter's URL, user and CA; VDDK's image and vCenter's thumbprint if VDDK is used
    (asked of vCenter: a TLS handshake)."""
    vcenter = settings.need_vcenter()
    ca = vcenter.ca_file.read_text() if vcenter.ca_file else None
    thumbprint = sha1_thumbprint(vcenter.url) if settings.vddk_image else None  # VDDK wants SHA-1, whatever pins it
    return SourceAccess(vcenter.url, vcenter.user, ca, settings.vddk_image, thumbprint)


def _ssl_context(target: VCenter) -> tuple[ssl.SSLContext | None, dict[str, Any]]:
    if target.insecure:
        log.warning("TLS verification of %s is OFF (--insecure): anyone on the path can read the password", target.url)
        return None, {"disableSslCertValidation": True}
    if target.thumbprint:
        return None, {"thumbprint": target.thumbprint.replace(":", "").lower()}  # checked in _check_pin too
    if target.ca_file is not None and not Path(target.ca_file).is_file():
        raise InputError(
            str(target.ca_file), "", "CA file not found", "point VMWAVE_VCENTER_CA / --ca at the vCenter CA (PEM)"
        )
    return _verified(target), {}


def _verified(target: VCenter) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(target.ca_file) if target.ca_file else None)
    except (ssl.SSLError, ValueError) as exc:
        raise InputError(
            str(target.ca_file),
            "",
            f"is not a PEM CA bundle ({exc})",
            "point VMWAVE_VCENTER_CA / --ca at the certificate (PEM) of the CA that signed vCenter's",
        ) from None


def _check_pin(host: str, port: int, pin: str, where: str) -> None:
    """pyVmomi skips the pin when its first request succeeds unverified, so compare it ourselves."""
    algorithm = {40: hashlib.sha1, 64: hashlib.sha256, 128: hashlib.sha512}.get(len(pin))
    if algorithm is None:
        raise InputError(
            "--thumbprint",
            "",
            f"{pin!r} is not a SHA-1, SHA-256 or SHA-512 thumbprint",
            "copy the certificate's SHA-256 fingerprint (64 hex digits, colons allowed)",
        )
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=30) as raw, context.wrap_socket(raw) as tls:
        actual = algorithm(tls.getpeercert(binary_form=True)).hexdigest()
    if actual != pin:
        raise ConnectionFailed(
            f"the certificate of {where} does not match the pinned thumbprint (it is {actual})",
            "check --thumbprint against the vCenter's certificate",
            cause=REFUSED,
        )


@contextmanager
def connect(target: VCenter) -> Iterator[vim.ServiceInstance]:
    """A logged-in session; every way of failing becomes one ConnectionFailed line."""
    url = urlparse(target.url if "://" in target.url else f"https://{target.url}")
    if url.scheme not in ("https", "http") or not url.hostname:
        raise InputError("vCenter URL", "", f"{target.url!r} is not a vCenter URL", "write https://HOST[:PORT]/sdk")
    context, extra = _ssl_context(target)
    where = f"{url.hostname}:{url.port or 443}"
    try:
        if target.thumbprint:
            _check_pin(url.hostname, url.port or 443, extra["thumbprint"], where)
        si = SmartConnect(
            protocol=url.scheme,
            host=url.hostname,
            port=url.port or (443 if url.scheme == "https" else 80),
            path=url.path or "/sdk",
            user=target.user,
            pwd=password(target),
            sslContext=context,
            httpConnectionTimeout=30,
            **extra,
        )
    except vim.fault.InvalidLogin:
        raise ConnectionFailed(
            f"vCenter {where} refused the user name or password for {target.user}",
            "check VMWAVE_VCENTER_USER and the password file",
            cause=REFUSED,
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise ConnectionFailed(
            f"the TLS certificate of {where} does not verify ({exc.verify_message})",
            "pass the vCenter CA with --ca / VMWAVE_VCENTER_CA, pin it with --thumbprint, "
            "or, in a lab only, --insecure",
            cause=REFUSED,
        ) from None
    except ssl.SSLError as exc:
        raise ConnectionFailed(
            f"TLS with {where} failed ({exc.reason or exc})", "check that the URL is the vCenter's HTTPS endpoint"
        ) from None
    except (socket.timeout, TimeoutError):
        raise ConnectionFailed(
            f"vCenter {where} did not answer within 30 s", "check the address and firewall"
        ) from None
    except OSError as exc:
        raise ConnectionFailed(
            f"cannot reach vCenter at {where} ({exc.strerror or exc})",
            "check the URL and that vCenter is up (lab: `vmwave lab up`)",
        ) from None
    except Exception as exc:  # pyVmomi's thumbprint mismatch and HTTP errors have no common base
        if type(exc).__name__ == "ThumbprintMismatchException":
            raise ConnectionFailed(
                f"the certificate of {where} does not match the pinned thumbprint",
                "check --thumbprint against the vCenter's certificate",
                cause=REFUSED,
            ) from None
        if "is down or is not a VIM server" in str(exc) or isinstance(exc, http.client.HTTPException):
            raise ConnectionFailed(
                f"vCenter {where} did not answer its API ({exc}): starting, restarting or overloaded",
                "wait and run again (steps retry this by themselves)",
                cause=UNAVAILABLE,
            ) from None
        raise
    try:
        yield si
    finally:
        Disconnect(si)


def fault_cause(exc: BaseException) -> str | None:
    """The diagnosis cause of a pyVmomi fault or a failure of vCenter's HTTP connection; None for anything else."""
    if isinstance(exc, vim.fault.NotAuthenticated):
        return "vcenter-session-expired"  # a retry logs in again
    if isinstance(exc, (vim.fault.MethodDisabled, vim.fault.TaskInProgress)):
        return "vcenter-busy"
    if isinstance(exc, (http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout)):
        return UNAVAILABLE  # 503 from a restarting vpxd, a dropped connection
    return None


def session_cookie(si: vim.ServiceInstance) -> str:
    """The SOAP session's cookie, which vCenter's datastore file access also accepts."""
    return si._stub.cookie or ""


def sha1_thumbprint(url: str) -> str:
    """The SHA-1 thumbprint of the certificate ``url`` serves, colon-separated, as VDDK asks for it.

    Identification for VDDK only, not a security check: the connection is verified separately.
    """
    parsed = urlparse(url if "://" in url else f"https://{url}")
    try:
        der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((parsed.hostname, parsed.port or 443), timeout=30))
    except (OSError, ValueError) as exc:
        raise ConnectionFailed(
            f"cannot read the certificate of {parsed.hostname}:{parsed.port or 443} for VDDK's thumbprint ({exc})",
            "check that vCenter is up and reachable from here",
            cause=UNAVAILABLE,
        ) from None
    digest = hashlib.sha1(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def inventory(
    target: VCenter, page_size: int = PAGE_SIZE, progress: Progress | None = None, only: list[str] | None = None
) -> list[SourceVM]:
    """Every VM with its vSphere tags: the SOAP inventory plus one batched REST lookup; ``only`` those VMs (by
    moref) when given, as a wave needs (any of them gone is left out).

    ``progress`` gets the number of objects (VMs, hosts, folders, ...) read so far, page by page.
    """
    with connect(target) as si:
        records = read_inventory(si, page_size, progress, only)
    # A pinned thumbprint was checked when connecting; --insecure was logged there.
    context = ssl._create_unverified_context() if target.insecure or target.thumbprint else _verified(target)
    found = read_tags(target.url, target.user, password(target), context, [r.moref for r in records])
    return [replace(r, tags=found[r.moref]) if r.moref in found else r for r in records]


def vcenter_id(target: VCenter) -> str:
    """The vCenter's own id (``about.instanceUuid``): with a VM's instance UUID, what the ledger knows a VM by."""
    with connect(target) as si:
        return si.content.about.instanceUuid or ""


Progress = Callable[[int], None]


def retrieve(
    si: vim.ServiceInstance, specs: dict[type, list[str]], page_size: int = PAGE_SIZE, progress: Progress | None = None
) -> list[Any]:
    """Every object of the given types below the root folder with the given properties, all pages."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, list(specs), True)
    try:
        traversal = vmodl.query.PropertyCollector.TraversalSpec(
            name="view", path="view", skip=False, type=vim.view.ContainerView
        )
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=t, pathSet=p) for t, p in specs.items()],
        )
        collector = content.propertyCollector
        options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=page_size)
        result = collector.RetrievePropertiesEx([spec], options)
        objects = []
        while result is not None:
            objects.extend(result.objects)
            if progress:
                progress(len(objects))
            result = collector.ContinueRetrievePropertiesEx(result.token) if result.token else None
        return objects
    finally:
        view.Destroy()


def _these_vms(si: vim.ServiceInstance, morefs: list[str], page_size: int) -> list[Any]:
    """The VMs ``morefs`` with their properties, all pages; one vCenter no longer has is left out."""
    wanted = list(dict.fromkeys(morefs))
    collector = si.RetrieveContent().propertyCollector
    while wanted:
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[
                vmodl.query.PropertyCollector.ObjectSpec(obj=vim.VirtualMachine(m, si._stub), skip=False)
                for m in wanted
            ],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=VM_PROPERTIES)],
        )
        try:
            result = collector.RetrievePropertiesEx(
                [spec], vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=page_size)
            )
        except vmodl.fault.ManagedObjectNotFound as exc:  # removed since it was planned: the wave says so
            wanted.remove(exc.obj._moId)
            continue
        objects = []
        while result is not None:
            objects.extend(result.objects)
            result = collector.ContinueRetrievePropertiesEx(result.token) if result.token else None
        return objects
    return []


_CONTROLLERS = {
    vim.vm.device.ParaVirtualSCSIController: "pvscsi",
    vim.vm.device.VirtualLsiLogicSASController: "lsilogic-sas",
    vim.vm.device.VirtualLsiLogicController: "lsilogic",
    vim.vm.device.VirtualBusLogicController: "buslogic",
    vim.vm.device.VirtualAHCIController: "sata",
    vim.vm.device.VirtualSATAController: "sata",
    vim.vm.device.VirtualNVMEController: "nvme",
    vim.vm.device.VirtualIDEController: "ide",
}
_NICS = {
    vim.vm.device.VirtualSriovEthernetCard: "sriov",
    vim.vm.device.VirtualVmxnet3: "vmxnet3",
    vim.vm.device.VirtualE1000e: "e1000e",
    vim.vm.device.VirtualE1000: "e1000",
    vim.vm.device.VirtualVmxnet2: "vmxnet2",
    vim.vm.device.VirtualPCNet32: "pcnet32",
}
_EXTRA = {
    vim.vm.device.VirtualUSB: "usb",
    vim.vm.device.VirtualTPM: "tpm",
    vim.vm.device.VirtualPCIPassthrough: "passthrough",
    vim.vm.device.VirtualSerialPort: "serial",
    vim.vm.device.VirtualFloppy: "floppy",
}
_TOOLS = {"guestToolsRunning": "running"}


def _kind(obj: Any, table: dict[type, str]) -> str | None:
    for cls, name in table.items():
        if isinstance(obj, cls):
            return name
    return None


class _Estate:
    """Names and VLANs of the non-VM objects, to resolve the references VMs hold."""

    def __init__(self, objects: list[Any]):
        self.props: dict[str, dict[str, Any]] = {}
        self.kind: dict[str, str] = {}
        self.vlans: dict[str, int] = {}
        self.dvpg: dict[str, tuple[str, int | None]] = {}
        for obj in objects:
            moid = obj.obj._moId
            props = {p.name: p.val for p in obj.propSet}
            self.props[moid] = props
            self.kind[moid] = type(obj.obj).__name__.rsplit(".", 1)[-1]
            for pg in props.get("config.network.portgroup") or ():
                self.vlans.setdefault(pg.spec.name, pg.spec.vlanId)
            if "key" in props:
                vlan = getattr(getattr(props.get("config.defaultPortConfig"), "vlan", None), "vlanId", None)
                self.dvpg[props["key"]] = (props["name"], vlan if isinstance(vlan, int) else None)

    def name(self, ref: Any) -> str:
        return self.props.get(ref._moId, {}).get("name", "") if ref is not None else ""

    def placement(self, vm_parent: Any, host: Any) -> tuple[str, str, str]:
        """(datacenter, folder path, cluster) of a VM."""
        parts, ref = [], vm_parent
        while ref is not None and self.kind.get(ref._moId) == "Folder":
            parent = self.props[ref._moId].get("parent")
            if parent is not None and self.kind.get(parent._moId) == "Datacenter":
                break  # the datacenter's own "vm" folder is not part of the path
            parts.append(self.name(ref))
            ref = parent
        datacenter = self.name(self.props[ref._moId].get("parent")) if ref is not None else ""
        cluster = ""
        if host is not None:
            parent = self.props.get(host._moId, {}).get("parent")
            if parent is not None and self.kind.get(parent._moId) == "ClusterComputeResource":
                cluster = self.name(parent)
        return datacenter, "/".join(reversed(parts)), cluster

    def host_state(self, host: Any) -> str:
        props = self.props.get(host._moId, {}) if host is not None else {}
        if props.get("runtime.inMaintenanceMode"):
            return "maintenance"
        return str(props.get("runtime.connectionState") or "connected")

    def cluster_facts(self, host: Any, vm_moid: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(what the host's cluster has on: drs, dpm; the VM-host affinity rules naming this VM)."""
        parent = self.props.get(host._moId, {}).get("parent") if host is not None else None
        config = self.props.get(parent._moId, {}).get("configurationEx") if parent is not None else None
        if not isinstance(config, vim.cluster.ConfigInfoEx):
            return (), ()
        features = tuple(
            name
            for name, on in (
                ("drs", getattr(config.drsConfig, "enabled", False)),
                ("dpm", getattr(config.dpmConfigInfo, "enabled", False)),
            )
            if on
        )
        groups = {
            g.name
            for g in config.group or ()
            if isinstance(g, vim.cluster.VmGroup) and any(vm._moId == vm_moid for vm in g.vm or ())
        }
        rules = tuple(
            sorted(
                r.name
                for r in config.rule or ()
                if isinstance(r, vim.cluster.VmHostRuleInfo) and r.vmGroupName in groups
            )
        )
        return features, rules


def _disks_and_nics(devices: list[Any], estate: _Estate) -> tuple[list[Disk], list[Nic], list[str]]:
    controllers = {d.key: (_kind(d, _CONTROLLERS), d.busNumber) for d in devices if _kind(d, _CONTROLLERS)}
    disks, nics, extra = [], [], []
    for d in devices:
        label = d.deviceInfo.label if d.deviceInfo else str(d.key)
        if isinstance(d, vim.vm.device.VirtualDisk):
            b = d.backing
            ctrl, bus = controllers.get(d.controllerKey, ("unknown", -1))
            rdm = ""
            if isinstance(b, vim.vm.device.VirtualDisk.RawDiskMappingVer1BackingInfo):
                rdm = "physical" if b.compatibilityMode == "physicalMode" else "virtual"
            disks.append(
                Disk(
                    key=d.key,
                    label=label,
                    file=b.fileName,
                    datastore=estate.name(b.datastore),
                    capacity_bytes=d.capacityInBytes or d.capacityInKB * 1024,
                    controller=ctrl,
                    bus=bus,
                    unit=d.unitNumber if d.unitNumber is not None else -1,
                    sharing="multiwriter" if getattr(b, "sharing", None) == "sharingMultiWriter" else "none",
                    mode=b.diskMode or "persistent",
                    thin=bool(getattr(b, "thinProvisioned", False)),
                    rdm=rdm,
                    change_id=getattr(b, "changeId", None) or "",
                    uuid=getattr(b, "uuid", None) or "",
                )
            )
        elif isinstance(d, vim.vm.device.VirtualEthernetCard):
            b = d.backing
            if isinstance(b, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
                portgroup, vlan = estate.dvpg.get(b.port.portgroupKey, (b.port.portgroupKey, None))
                distributed = True
            else:
                portgroup = getattr(b, "deviceName", "") or estate.name(getattr(b, "network", None))
                vlan, distributed = estate.vlans.get(portgroup), False
            nics.append(
                Nic(
                    key=d.key,
                    label=label,
                    mac=(d.macAddress or "").lower(),
                    adapter=_kind(d, _NICS) or type(d).__name__,
                    portgroup=portgroup,
                    vlan=vlan,
                    distributed=distributed,
                )
            )
        elif _kind(d, _EXTRA):
            extra.append(_kind(d, _EXTRA))
        elif label.startswith("Virtual TPM"):  # sessions on an API version older than 6.7 see a plain VirtualDevice
            extra.append("tpm")
    return disks, nics, sorted(set(extra))


def _with_addresses(nics: list[Nic], net: list[Any]) -> tuple[Nic, ...]:
    """Each NIC with the addresses VMware Tools reports on its MAC (guest.net[].ipConfig) and their origin."""
    reported = {(n.macAddress or "").lower(): n.ipConfig for n in net or () if n.ipConfig}
    found = []
    for nic in nics:
        config = reported.get(nic.mac)
        addresses = [
            a for a in (config.ipAddress if config else ()) or () if not a.ipAddress.lower().startswith("fe80")
        ]
        origins = {a.origin for a in addresses}
        origin = "dhcp" if "dhcp" in origins else "manual" if "manual" in origins else ""
        found.append(
            replace(nic, addresses=tuple(f"{a.ipAddress}/{a.prefixLength}" for a in addresses), address_origin=origin)
        )
    return tuple(found)


def _gateway_and_dns(stacks: list[Any]) -> tuple[str, tuple[str, ...]]:
    """The guest's default gateway and DNS servers from its first IP stack (guest.ipStack)."""
    stack = (stacks or [None])[0]
    routes = getattr(getattr(stack, "ipRouteConfig", None), "ipRoute", None) or ()
    gateway = next(
        (r.gateway.ipAddress for r in routes if r.prefixLength == 0 and r.gateway and r.gateway.ipAddress), ""
    )
    return gateway or "", tuple(getattr(getattr(stack, "dnsConfig", None), "ipAddress", None) or ())


def _snapshots(info: Any) -> list[Snapshot]:
    found, todo = [], list(info.rootSnapshotList) if info else []
    while todo:
        snap = todo.pop(0)
        found.append(Snapshot(snap.name, snap.createTime.isoformat() if snap.createTime else ""))
        todo.extend(snap.childSnapshotList or ())
    return found


def _ips(net: list[Any], primary: str | None) -> tuple[str, ...]:
    ips = [ip for nic in net or () for ip in (nic.ipAddress or ()) if not ip.lower().startswith("fe80")]
    if primary and primary not in ips:
        ips.insert(0, primary)
    return tuple(dict.fromkeys(ips))


def to_record(moid: str, p: dict[str, Any], estate: _Estate, fields: dict[int, str], vcenter: str = "") -> SourceVM:
    datacenter, folder, cluster = estate.placement(p.get("parent"), p.get("runtime.host"))
    cluster_features, host_rules = estate.cluster_facts(p.get("runtime.host"), moid)
    disks, nics, extra = _disks_and_nics(p.get("config.hardware.device") or [], estate)
    tools_status = p.get("guest.toolsStatus")
    tools = _TOOLS.get(
        p.get("guest.toolsRunningStatus"), "not_installed" if tools_status == "toolsNotInstalled" else "not_running"
    )
    boot = p.get("config.bootOptions")
    gateway, dns = _gateway_and_dns(p.get("guest.ipStack"))
    return SourceVM(
        name=p.get("name", ""),
        moref=moid,
        instance_uuid=p.get("config.instanceUuid") or "",
        vcenter=vcenter,
        bios_uuid=p.get("config.uuid") or "",
        datacenter=datacenter,
        cluster=cluster,
        host=estate.name(p.get("runtime.host")),
        folder=folder,
        guest_id=p.get("config.guestId") or "",
        guest_family=guest_os(p.get("config.guestId") or "").family,
        guest_name=p.get("config.guestFullName") or "",
        firmware=p.get("config.firmware") or "bios",
        secure_boot=bool(getattr(boot, "efiSecureBootEnabled", False)),
        cpus=p.get("config.hardware.numCPU") or 0,
        memory_mb=p.get("config.hardware.memoryMB") or 0,
        cbt=bool(p.get("config.changeTrackingEnabled")),
        power_state=str(p.get("runtime.powerState") or "poweredOff"),
        tools=tools,
        ips=_ips(p.get("guest.net"), p.get("guest.ipAddress")),
        template=bool(p.get("config.template")),
        disks=tuple(disks),
        nics=_with_addresses(nics, p.get("guest.net")),
        gateway=gateway,
        dns=dns,
        snapshots=tuple(_snapshots(p.get("snapshot"))),
        devices=tuple(extra),
        attributes={fields.get(v.key, str(v.key)): v.value for v in p.get("customValue") or ()},
        hot_add=tuple(
            kind
            for kind, prop in (
                ("cpu", "config.cpuHotAddEnabled"),
                ("cpu-remove", "config.cpuHotRemoveEnabled"),
                ("memory", "config.memoryHotAddEnabled"),
            )
            if p.get(prop)
        ),
        cpu_affinity=tuple(getattr(p.get("config.cpuAffinity"), "affinitySet", None) or ()),
        extra_config={
            o.key: str(o.value) for o in p.get("config.extraConfig") or () if CHECKED_EXTRA_CONFIG.match(o.key)
        },
        hostname=p.get("guest.hostName") or "",
        consolidation_needed=bool(p.get("runtime.consolidationNeeded")),
        fault_tolerance=str(p.get("runtime.faultToleranceState") or "notConfigured") != "notConfigured",
        host_state=estate.host_state(p.get("runtime.host")),
        cluster_features=cluster_features,
        host_rules=host_rules,
        guest_disks=tuple(
            GuestDisk(d.diskPath or "", d.capacity or 0, d.freeSpace or 0) for d in p.get("guest.disk") or ()
        ),
        boot_order=tuple(
            d.deviceKey
            for d in getattr(boot, "bootOrder", None) or ()
            if isinstance(d, vim.vm.BootOptions.BootableDiskDevice)
        ),
    )


def read_inventory(
    si: vim.ServiceInstance, page_size: int = PAGE_SIZE, progress: Progress | None = None, only: list[str] | None = None
) -> list[SourceVM]:
    """Every VM and template (or ``only`` those, by moref) as a SourceVM, sorted by name then moref.

    A wave reads its own VMs, not the estate's: reading every VM for each of the 2000-VM rehearsal's 41 waves
    cost the wave runs and the lab vCenter CPU the waves needed.
    """
    content = si.RetrieveContent()
    fields = {f.key: f.name for f in (content.customFieldsManager.field or ())} if content.customFieldsManager else {}
    if only is None:
        objects = retrieve(si, {vim.VirtualMachine: VM_PROPERTIES, **CONTEXT_PROPERTIES}, page_size, progress)
    else:
        objects = retrieve(si, CONTEXT_PROPERTIES, page_size, progress) + _these_vms(si, only, page_size)
    vm_objects = [o for o in objects if isinstance(o.obj, vim.VirtualMachine)]
    estate = _Estate([o for o in objects if not isinstance(o.obj, vim.VirtualMachine)])
    center = content.about.instanceUuid or ""
    records = [to_record(o.obj._moId, {p.name: p.val for p in o.propSet}, estate, fields, center) for o in vm_objects]
    return sorted(records, key=lambda r: (r.name, r.moref))
