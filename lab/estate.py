"""Estate files: a declarative description of a vSphere estate for the lab vCenter.

``expand`` validates the YAML and turns it into the fully resolved seed the Go
simulator builds (every ``count`` stamped out, hosts and MACs assigned).
See ``estates/small.yaml`` for every field.
"""

from __future__ import annotations

import re

import hashlib
import ipaddress
import uuid
from typing import Any

import yaml

from vmwave_lab.debian_guest import DISK_GB, VARIANTS

CONTROLLERS = ("pvscsi", "lsilogic", "lsilogic-sas", "buslogic", "sata", "nvme", "ide")
DEVICES = ("usb", "tpm", "passthrough", "serial", "floppy")
GUEST_IMAGES = tuple(f"debian12{'' if v == 'ok' else '-' + v}" for v in VARIANTS)  # real guests (lab/debian_guest.py)
GUEST_IMAGE_GB = DISK_GB
CONVERT_ATTRIBUTE = "vmwave.convert"  # vmwave's per-VM choice of conversion tool (copy | virt-v2v)
POWER = ("poweredOn", "poweredOff", "suspended")
TOOLS = ("running", "not_running", "not_installed")
DISK_MODES = ("persistent", "independent_persistent", "independent_nonpersistent")
DEFAULT_USER = "administrator@vsphere.local"


class EstateError(Exception):
    """An estate file is wrong; the message names the file, the field and the fix."""

    def __init__(self, source: str, field: str, problem: str, fix: str):
        super().__init__(f"{source}: {field}: {problem}. {fix}")


class _Reader:
    """Typed access to one mapping of the estate, failing with its path."""

    def __init__(self, source: str, path: str, data: Any):
        if not isinstance(data, dict):
            raise EstateError(source, path or "(top)", f"expected a mapping, got {data!r}", "write `key: value` lines")
        self.source, self.path, self.data = source, path, data

    def error(self, key: str, problem: str, fix: str) -> EstateError:
        return EstateError(self.source, f"{self.path}.{key}".lstrip("."), problem, fix)

    def __call__(self, key: str, kind: type | tuple, default: Any = ..., choices: tuple = ()) -> Any:
        value = self.data.get(key)
        if value is None:
            if default is ...:
                raise self.error(key, "is missing", f"add `{key}:`")
            return default
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error(key, f"must not be true/false (got {value!r})", "quote it if it is a name")
        if not isinstance(value, kind):
            raise self.error(key, f"has the wrong type ({type(value).__name__})", f"make it a {kind}")
        if choices and value not in choices:
            raise self.error(key, f"{value!r} is not allowed", "use one of: " + ", ".join(map(str, choices)))
        return value

    def each(self, key: str) -> list["_Reader"]:
        return [
            _Reader(self.source, f"{self.path}.{key}[{i}]".lstrip("."), d) for i, d in enumerate(self(key, list, []))
        ]

    def known(self, *keys: str) -> "_Reader":
        extra = sorted(set(self.data) - set(keys))
        if extra:
            raise self.error(str(extra[0]), "is not a known field", "use one of: " + ", ".join(keys))
        return self


MAX_VMS, MAX_COUNT = 100_000, 10_000  # in an estate, and stamped out by one entry
MAX_HOSTS = 1_000  # in one cluster: vSphere allows 96, a typo or a hostile file asks for millions
_N = re.compile(r"\{n(?::(0?)([1-9]|1[0-2])d)?\}")


def _stamp(text: Any, n: int) -> str:
    """``text`` with its ``{n}`` (or ``{n:03d}``, at most 12 wide) as the VM's number; other braces are text."""
    return _N.sub(lambda m: f"{n:{m.group(1) or ''}{m.group(2) or ''}d}", str(text))


def _cpus(entry: "_Reader") -> list[int]:
    cpus = entry("cpu_affinity", list, [])
    if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 4096 for c in cpus):
        raise entry.error("cpu_affinity", f"{cpus!r} is not a list of host CPU numbers", "write e.g. [0, 1, 2, 3]")
    return cpus


def inventory_name(name: str) -> str:
    """A name as vCenter keeps it: '%', '/' and '\\' escaped (``a/b`` is ``a%2fb``), as the API then reports it."""
    return "".join(
        f"%{ord(ch):02x}" if ch in "/\\" or (ch == "%" and not _ESCAPED.match(name, i)) else ch
        for i, ch in enumerate(name)
    )


_ESCAPED = re.compile(r"%(25|2f|5c)", re.IGNORECASE)


def folder_name(name: str) -> str:
    """A VM's directory on its datastore: its inventory name with control characters and '"' escaped too (a VMDK
    descriptor names its extent file in double quotes)."""
    return "".join(
        f"%{ord(ch):02x}" if ord(ch) < 32 or ord(ch) == 127 or ch == '"' else ch for ch in inventory_name(name)
    )


MAX_ESTATE_BYTES = 64 << 20  # an estate of 100,000 VMs with `count:` takes a few KiB


def load(path: str) -> dict[str, Any]:
    """Read and expand an estate file."""
    return expand(_read(path), path)


def load_nodes(path: str) -> list[dict[str, Any]]:
    """The lab Kubernetes nodes a file declares (``nodes:``, as an estate writes them), to size the lab as the real
    cluster is."""
    root = _Reader(path, "", _read(path)).known("version", "nodes")
    root("version", int, choices=(1,))
    nodes = _nodes(root)
    if not nodes:
        raise EstateError(path, "nodes", "declares no nodes", "list them: - {name: n1, cpu: 32, memory_gi: 128}")
    return nodes


def _read(path: str) -> Any:
    """At most 64 MiB of UTF-8 YAML, without anchors or aliases (a few lines of aliases can expand to gigabytes),
    read by libyaml."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_ESTATE_BYTES + 1)
    except FileNotFoundError:
        raise EstateError(path, "(file)", "not found", "check the path; examples/ has estates to start from") from None
    except OSError as exc:
        raise EstateError(path, "(file)", f"cannot be read: {exc.strerror}", "check its permissions") from None
    if len(raw) > MAX_ESTATE_BYTES:
        raise EstateError(path, "(file)", "is larger than 64 MiB", "describe VMs with `count:` instead of one by one")
    try:
        text = raw.decode("utf-8")
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                raise EstateError(path, f"line {mark.line + 1}", "uses a YAML anchor or alias", "write the values out")
        data = yaml.load(text, Loader=yaml.CSafeLoader)
    except UnicodeDecodeError as exc:
        raise EstateError(path, f"byte {exc.start}", "is not UTF-8 text", "save the estate as UTF-8") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise EstateError(path, "(file)", f"not valid YAML: {exc}", "fix the syntax") from None
    return data


def _mac(counter: int) -> str:
    """VMware's static MAC range, 00:50:56:00:00:00 - 00:50:56:3f:ff:ff."""
    return "00:50:56:{:02x}:{:02x}:{:02x}".format((counter >> 16) & 0x3F, (counter >> 8) & 0xFF, counter & 0xFF)


def expand(data: Any, source: str = "estate") -> dict[str, Any]:
    root = _Reader(source, "", data).known("version", "user", "datacenters", "vms", "nodes")
    root("version", int, choices=(1,))
    datacenters, hosts_of, datastores_of, networks_of = [], {}, {}, {}
    for dc in root.each("datacenters"):
        dc.known("name", "folders", "datastores", "portgroups", "switches", "clusters")
        name = _directory_name(dc, "name", dc("name", str))
        clusters = []
        for cl in dc.each("clusters"):
            cl.known("name", "hosts", "drs", "dpm", "maintenance", "disconnected", "vm_host_rules")
            cname = cl("name", str)
            hosts = cl("hosts", (int, list))
            if (len(hosts) if isinstance(hosts, list) else hosts) > MAX_HOSTS:
                raise cl.error(
                    "hosts", f"more than {MAX_HOSTS} hosts in one cluster", "vSphere allows 96: split the cluster"
                )
            names = (
                [f"{cname}-esx{i:02d}" for i in range(1, hosts + 1)]
                if isinstance(hosts, int)
                else [str(h) for h in hosts]
            )
            if not names:
                raise cl.error("hosts", "a cluster needs at least one host", "give a count or a list of names")
            states = {key: [str(h) for h in cl(key, list, [])] for key in ("maintenance", "disconnected")}
            rules = []
            for rule in cl.each("vm_host_rules"):
                rule.known("name", "vms", "hosts")
                rules.append(
                    {
                        "name": rule("name", str),
                        "vms": [str(v) for v in rule("vms", list)],
                        "hosts": [str(h) for h in rule("hosts", list)],
                    }
                )
            for key, listed in [*states.items(), *(("vm_host_rules", r["hosts"]) for r in rules)]:
                unknown = sorted(set(listed) - set(names))
                if unknown:
                    raise cl.error(key, f"{unknown[0]!r} is not a host of {cname}", "use: " + ", ".join(names))
            clusters.append(
                {
                    "name": cname,
                    "hosts": names,
                    "drs": cl("drs", bool, False),
                    "dpm": cl("dpm", bool, False),
                    **states,
                    "vm_host_rules": rules,
                }
            )
            hosts_of[(name, cname)] = names
        standard = [{"name": p("name", str), "vlan": p("vlan", int, 0)} for p in dc.each("portgroups")]
        switches = [
            {
                "name": s.known("name", "portgroups")("name", str),
                "portgroups": [{"name": p("name", str), "vlan": p("vlan", int, 0)} for p in s.each("portgroups")],
            }
            for s in dc.each("switches")
        ]
        datastores = [_directory_name(dc, "datastores", str(d)) for d in dc("datastores", list)]
        if not clusters or not datastores:
            raise dc.error(
                "clusters",
                "a datacenter needs at least one cluster and one datastore",
                "add `clusters:` and `datastores:`",
            )
        datastores_of[name] = datastores
        networks_of[name] = {p["name"] for p in standard} | {p["name"] for s in switches for p in s["portgroups"]}
        datacenters.append(
            {
                "name": name,
                "folders": [str(f) for f in dc("folders", list, [])],
                "datastores": datastores,
                "standard_portgroups": standard,
                "switches": switches,
                "clusters": clusters,
            }
        )
    if not datacenters:
        raise root.error("datacenters", "no datacenter", "add at least one under `datacenters:`")

    vms, attributes, shared, placed = [], set(), {}, {}
    mac_counter = 0
    for entry in root.each("vms"):
        entry.known(
            "name",
            "count",
            "datacenter",
            "cluster",
            "host",
            "folder",
            "guest_id",
            "firmware",
            "secure_boot",
            "cpus",
            "memory_mb",
            "cbt",
            "disks",
            "nics",
            "devices",
            "power",
            "tools",
            "ips",
            "attributes",
            "snapshots",
            "template",
            "tags",
            "extra_config",
            "hot_add",
            "cpu_affinity",
            "hostname",
            "consolidation_needed",
            "fault_tolerance",
            "guest_disks",
            "gateway",
            "dns",
            "instance_uuid",
            "bios_uuid",
        )
        dc = entry("datacenter", str, datacenters[0]["name"])
        if dc not in datastores_of:
            raise entry.error("datacenter", f"{dc!r} is not declared", "declare it under `datacenters:`")
        cluster = entry("cluster", str, datacenters[[d["name"] for d in datacenters].index(dc)]["clusters"][0]["name"])
        if (dc, cluster) not in hosts_of:
            raise entry.error(
                "cluster", f"{cluster!r} is not a cluster of {dc}", "declare it under the datacenter's `clusters:`"
            )
        cluster_hosts = hosts_of[(dc, cluster)]
        folder = entry("folder", str, "")
        dc_doc = datacenters[[d["name"] for d in datacenters].index(dc)]
        if folder and not any(f == folder or f.startswith(folder + "/") for f in dc_doc["folders"]):
            raise entry.error("folder", f"{folder!r} is not declared", f"add it to {dc}'s `folders:`")
        count = entry("count", int, 1)
        if not 1 <= count <= MAX_COUNT:
            raise entry.error("count", f"{count} is not from 1 to {MAX_COUNT}", "split the entry in two")
        if len(vms) + count > MAX_VMS:
            raise entry.error("count", f"the estate would hold more than {MAX_VMS} VMs", "make the counts smaller")
        for i in range(1, count + 1):
            fmt = lambda s: _stamp(s, i)  # noqa: E731 - `{n}` stamps out similar VMs
            name = inventory_name(fmt(entry("name", str)))
            if name in placed:
                raise entry.error("name", f"VM name {name!r} is used twice", "use {n} in the name with count")
            placed[name] = True
            host = entry("host", str, cluster_hosts[(len(vms)) % len(cluster_hosts)])
            if host not in cluster_hosts:
                raise entry.error(
                    "host", f"{host!r} is not in cluster {cluster}", "pick one of: " + ", ".join(cluster_hosts)
                )
            controllers: list[dict] = []
            disks = []
            for d in entry.each("disks"):
                d.known(
                    "size_gb", "datastore", "controller", "bus", "mode", "thin", "shared", "data_mb", "image", "path"
                )
                ds = d("datastore", str, datastores_of[dc][0])
                if ds not in datastores_of[dc]:
                    raise d.error("datastore", f"{ds!r} is not a datastore of {dc}", "declare it under `datastores:`")
                ctrl = {"type": d("controller", str, "pvscsi", choices=CONTROLLERS), "bus": d("bus", int, 0)}
                if ctrl not in controllers:
                    controllers.append(ctrl)
                index = controllers.index(ctrl)
                units = [x["unit"] for x in disks if x["controller"] == index]
                unit = max(units, default=-1) + 1
                if ctrl["type"] not in ("sata", "nvme", "ide") and unit == 7:
                    unit = 8  # SCSI unit 7 is the controller itself
                image = d("image", str, "", choices=("",) + GUEST_IMAGES)
                size_kb = int(float(d("size_gb", (int, float), *([GUEST_IMAGE_GB] if image else []))) * 1024 * 1024)
                if image and size_kb < GUEST_IMAGE_GB << 20:
                    raise d.error(
                        "size_gb",
                        f"the {image} image needs a disk of at least {GUEST_IMAGE_GB} GB",
                        f"set size_gb: {GUEST_IMAGE_GB} or more",
                    )
                if image and d("data_mb", int, 0):
                    raise d.error("data_mb", "a disk holds either a guest image or synthetic bytes", "drop one of them")
                given = _disk_path(d, fmt)
                disk = {
                    "controller": index,
                    "unit": unit,
                    "size_kb": size_kb,
                    "mode": d("mode", str, "persistent", choices=DISK_MODES),
                    "thin": d("thin", bool, True),
                    "sharing": "",
                    "create": True,
                    "data_mb": d("data_mb", int, 0),
                    "image": image,
                    "file": f"[{ds}] {given or f'{folder_name(name)}/{folder_name(name)}_{len(disks)}.vmdk'}",
                }
                share = d("shared", str, None)
                if share is not None:
                    share = fmt(share)
                    disk["sharing"] = "sharingMultiWriter"
                    disk["thin"] = False  # multi-writer needs eager-zeroed thick disks
                    if share in shared:
                        disk.update(file=shared[share]["file"], size_kb=shared[share]["size_kb"], create=False)
                    else:
                        disk["file"] = f"[{ds}] {given or f'shared/{share}.vmdk'}"
                        shared[share] = disk
                disk["uuid"] = disk_uuid(dc, disk["file"])
                disks.append(disk)
            nics = []
            for n in entry.each("nics"):
                n.known("portgroup", "mac", "type", "ips", "origin")
                pg = n("portgroup", str)
                if pg not in networks_of[dc]:
                    raise n.error(
                        "portgroup",
                        f"{pg!r} is not a portgroup of {dc}",
                        "declare it under `portgroups:` or `switches:`",
                    )
                mac_counter += 1
                nics.append(
                    {
                        "portgroup": pg,
                        "type": n("type", str, "vmxnet3", choices=("vmxnet3", "e1000e", "e1000", "sriov")),
                        "mac": fmt(n("mac", str, _mac(mac_counter))).lower(),
                        "ips": [_cidr(n, fmt(ip)) for ip in n("ips", list, [])],
                        "origin": n("origin", str, "manual", choices=("manual", "dhcp")),
                    }
                )
            attrs = {str(k): fmt(v) for k, v in entry("attributes", dict, {}).items()}
            if not any(disk["image"] for disk in disks):  # no operating system on its disks for virt-v2v to convert
                attrs.setdefault(CONVERT_ATTRIBUTE, "copy")
            attributes.update(attrs)
            firmware = entry("firmware", str, "bios", choices=("bios", "efi"))
            secure_boot = entry("secure_boot", bool, False)
            if secure_boot and firmware != "efi":
                raise entry.error("secure_boot", "secure boot needs EFI firmware", "set `firmware: efi`")
            vms.append(
                {
                    **_identities(entry, count),
                    "name": name,
                    "datacenter": dc,
                    "cluster": cluster,
                    "host": host,
                    "folder": folder,
                    "guest_id": entry("guest_id", str, "otherGuest"),
                    "firmware": firmware,
                    "secure_boot": secure_boot,
                    "cpus": entry("cpus", int, 1),
                    "memory_mb": entry("memory_mb", int, 1024),
                    "cbt": entry("cbt", bool, False),
                    "controllers": controllers,
                    "disks": disks,
                    "nics": nics,
                    "devices": [str(x) for x in entry("devices", list, [])],
                    "power": entry("power", str, "poweredOn", choices=POWER),
                    "tools": entry("tools", str, "running", choices=TOOLS),
                    "ips": [fmt(ip) for ip in entry("ips", list, [])],
                    "attributes": attrs,
                    "snapshots": [fmt(s) for s in entry("snapshots", list, [])],
                    "template": entry("template", bool, False),
                    "tags": _tags(entry, fmt),
                    "extra_config": {str(k): str(v) for k, v in entry("extra_config", dict, {}).items()},
                    "hot_add": [str(k) for k in entry("hot_add", list, [])],
                    "cpu_affinity": _cpus(entry),
                    "hostname": fmt(
                        entry("hostname", str, name)
                    ),  # what VMware Tools reports: the VM's name unless told
                    "consolidation_needed": entry("consolidation_needed", bool, False),
                    "fault_tolerance": entry("fault_tolerance", bool, False),
                    "guest_disks": [
                        {"path": g("path", str), "capacity_mb": g("capacity_mb", int), "free_mb": g("free_mb", int)}
                        for g in (g.known("path", "capacity_mb", "free_mb") for g in entry.each("guest_disks"))
                    ],
                    "gateway": _address(entry, "gateway", fmt(entry("gateway", str, ""))),  # the guest's default route
                    "dns": [_address(entry, "dns", fmt(a)) for a in entry("dns", list, [])],
                }
            )
            bad_hot = set(vms[-1]["hot_add"]) - {"cpu", "cpu-remove", "memory"}
            if bad_hot:
                raise entry.error("hot_add", f"unknown hot add {sorted(bad_hot)[0]!r}", "use: cpu, cpu-remove, memory")
            bad = set(vms[-1]["devices"]) - set(DEVICES)
            if bad:
                raise entry.error("devices", f"unknown device {sorted(bad)[0]!r}", "use: " + ", ".join(DEVICES))
    known = {vm["name"] for vm in vms}
    for dc in datacenters:
        for cl in dc["clusters"]:
            for rule in cl["vm_host_rules"]:
                if set(rule["vms"]) - known:
                    raise root.error(
                        "datacenters",
                        f"rule {rule['name']} of {cl['name']} names VM "
                        f"{sorted(set(rule['vms']) - known)[0]!r}, which the estate does not have",
                        "name VMs as they are after `count:` expansion, e.g. web-01",
                    )
    return {
        "user": root("user", str, DEFAULT_USER),
        "attributes": sorted(attributes),
        "datacenters": datacenters,
        "vms": vms,
        "nodes": _nodes(root),
    }


def _nodes(root: _Reader) -> list[dict[str, Any]] | None:
    """The lab Kubernetes nodes (`nodes:`), when the estate declares them."""
    if "nodes" not in root.data:
        return None
    nodes = []
    for node in root.each("nodes"):
        node.known("name", "cpu", "memory_gi", "hugepages_1gi", "labels")
        nodes.append(
            {
                "name": node("name", str),
                "cpu": node("cpu", int),
                "memory_gi": node("memory_gi", int),
                "hugepages_1gi": node("hugepages_1gi", int, 0),
                "labels": {str(k): str(v) for k, v in node("labels", dict, {}).items()},
            }
        )
    return nodes


def _address(reader: _Reader, key: str, text: str) -> str:
    """An IP address as written, or a clear error; "" stays "" (not given)."""
    try:
        return str(ipaddress.ip_address(text)) if text else ""
    except ValueError:
        raise reader.error(key, f"{text!r} is not an IP address", "write it like 10.0.2.2") from None


def _directory_name(reader: _Reader, key: str, name: str) -> str:
    """A datacenter's or datastore's name, which the lab vCenter keeps as a directory: never '.', '..' or a path
    (vCenter itself reports a '/' in a name as %2f)."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise reader.error(key, f"{name!r} is not a name", "write it as vCenter shows it, '/' as %2f")
    return name


def _disk_path(disk: _Reader, fmt) -> str:
    """Where a disk's file is on its datastore, when the estate says (an inventory does): a relative path, no '..'."""
    found = fmt(disk("path", str, ""))
    parts = found.split("/")
    if found and (
        found.startswith("/")
        or ".." in parts
        or "" in parts
        or not found.endswith(".vmdk")
        or any(ord(ch) < 32 or ch in '"\\' for ch in found)
    ):
        raise disk.error(
            "path",
            f"{found!r} is not a path on a datastore",
            "write it as vCenter shows it after the datastore, e.g. web-01/web-01_1.vmdk",
        )
    return found


def _identities(entry: _Reader, count: int) -> dict[str, str]:
    """A VM's instance and BIOS UUIDs when the estate keeps a real VM's (an inventory does); else vCenter's own."""
    found = {}
    for key in ("instance_uuid", "bios_uuid"):
        value = entry(key, str, "")
        if not value:
            continue
        if count > 1:
            raise entry.error(key, "a UUID is one VM's", "drop it, or `count:`")
        try:
            found[key] = str(uuid.UUID(value))
        except ValueError:
            raise entry.error(key, f"{value!r} is not a UUID", "copy it from `vmwave inventory`") from None
    return found


def disk_uuid(datacenter: str, file: str) -> str:
    """A disk's vSphere UUID as vCenter writes one (6000C29...): the same for the same file, as a shared disk has."""
    digest = hashlib.sha256(f"{datacenter}\0{file}".encode()).hexdigest().upper()
    text = "6000C29" + digest[:25]
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:32]}"


def _cidr(reader: _Reader, text: str) -> str:
    """A NIC address with its prefix length, as VMware Tools reports it."""
    try:
        if "/" in text:
            return str(ipaddress.ip_interface(text))
    except ValueError:
        pass
    raise reader.error("ips", f"{text!r} is not an address with its prefix length", "write it like 10.0.2.15/24")


def _tags(entry: _Reader, fmt) -> list[str]:
    """vSphere tags as "category/tag"."""
    found = [fmt(t) for t in entry("tags", list, [])]
    for tag in found:
        if tag.count("/") != 1 or not all(tag.split("/")):
            raise entry.error("tags", f"{tag!r} is not category/tag", "write tags as CATEGORY/TAG, e.g. app/erp")
    return found


def generated(n: int) -> dict[str, Any]:
    """An estate of ``n`` VMs shaped like the seed: web, app, middleware and db tiers, some Windows, some off."""
    tiers = [  # (share, name, guest, cpus, memory, disks GB, vlan portgroup, tier, power)
        (0.30, "web", "rhel8_64Guest", 2, 4096, [40], "pg-vlan100", "web", "poweredOn"),
        (0.25, "app", "rhel7_64Guest", 4, 8192, [60, 100], "pg-vlan100", "app", "poweredOn"),
        (0.15, "mw", "sles15_64Guest", 4, 16384, [80], "pg-vlan200", "middleware", "poweredOn"),
        (0.10, "db", "rhel8_64Guest", 8, 32768, [100, 500], "pg-vlan200", "db", "poweredOn"),
        (0.12, "win", "windows2019srv_64Guest", 4, 8192, [80], "pg-vlan100", "app", "poweredOn"),
        (0.08, "old", "centos7_64Guest", 2, 4096, [40], "pg-vlan100", "app", "poweredOff"),
    ]
    vms, left = [], n
    for index, (share, prefix, guest, cpus, mem, sizes, pg, tier, power) in enumerate(tiers):
        count = left if index == len(tiers) - 1 else min(left, round(n * share))
        left -= count
        if count:
            vms.append(
                {
                    "name": prefix + "-{n:05d}",
                    "count": count,
                    "cluster": f"cl-{index % 2 + 1:02d}",
                    "guest_id": guest,
                    "cpus": cpus,
                    "memory_mb": mem,
                    "power": power,
                    "disks": [
                        {"size_gb": s, "datastore": f"ds-{(index + j) % 2 + 1:02d}"} for j, s in enumerate(sizes)
                    ],
                    "nics": [{"portgroup": pg}],
                    "attributes": {"tier": tier},
                }
            )
    return {
        "version": 1,
        "datacenters": [
            {
                "name": "dc-lab",
                "datastores": ["ds-01", "ds-02"],
                "switches": [
                    {
                        "name": "dvs-lab",
                        "portgroups": [{"name": "pg-vlan100", "vlan": 100}, {"name": "pg-vlan200", "vlan": 200}],
                    }
                ],
                "clusters": [{"name": "cl-01", "hosts": 4}, {"name": "cl-02", "hosts": 4}],
            }
        ],
        "vms": vms,
    }
