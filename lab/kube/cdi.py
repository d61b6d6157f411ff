"""A simulated CDI: DataVolumes get a PVC backed by a file, and their source really lands in it.

Each PVC's bytes are the file ``volumes/<namespace>/<pvc>.img``.
http sources stream into it (basic auth from ``secretRef``, CA config maps,
extra headers): raw data straight in, sparse, as CDI's nbdkit-based importer
does; other formats through a scratch file and ``qemu-img``. vddk sources
log in to the lab vCenter with the Secret's credentials, check its
thumbprint, find the VM by BIOS UUID and the disk by ``backingFile``, and
copy only the data extents of its flat file from the datastore (what VDDK
reads through the host). With ``checkpoints`` (CDI's multi-stage, warm
import) the first stage copies the disk, each next one only the extents the
lab vCenter's QueryChangedDiskAreas reports changed since ``previous``; the
DataVolume is Paused between stages and Succeeded after ``finalCheckpoint``.
upload sources take the image through an upload endpoint with a per-PVC token, registry sources come from a local image
directory, and blank ones are made sparse. Failures carry CDI's messages.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import glob
import http.client
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vmwave_lab.kube.controllers import R, condition, event, quantity_gi
from vmwave_lab.kube.faults import Faults
from vmwave_lab.kube.server import Api, ApiError
from vmwave_lab.kube.quantity import parse_quantity

FS_OVERHEAD = 0.055  # CDI's default filesystem overhead for Filesystem-mode PVCs


CHUNK = 4 << 20
MAGIC = {b"QFI\xfb": "qcow2", b"KDMV": "vmdk", b"vhdxfile": "vhdx", b"conectix": "vpc"}
_EXTENT = re.compile(r'^(?:RW|RDONLY)\s+\d+\s+(?:FLAT|VMFS)\s+"(?P<file>[^"]+)"', re.MULTILINE)


RESTARTS, RESTART_SECONDS = 3, 1.0
COPIED = "cdi.kubevirt.io/storage.checkpoint.copied"  # on the PVC, one per checkpoint copied (CDI's annotation)
CHANGE_ID = re.compile(r"([0-9a-fA-F]{2}\s?)*-([0-9a-fA-F]{2}\s?)*/([0-9a-fA-F]*)")  # CDI's changeId pattern


class ImportFailed(Exception):
    pass


class Retryable(ImportFailed):
    """The connection to the source failed or dropped: CDI restarts its importer."""


def sniff(head: bytes) -> str:
    """raw, text (not an image) or the image format the first bytes name."""
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return kind
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "text"
    return "raw"


def _too_small(size: int, usable: int) -> str:
    return (
        f"Unable to process data: Virtual image size {size} is larger than the reported available storage "
        f"{usable}. A larger PVC is required."
    )


def _read_full(response, view: memoryview) -> int:
    """Fill ``view`` as far as the stream goes: the first chunk decides the format."""
    filled = 0
    while filled < len(view) and (count := response.readinto(view[filled:])):
        filled += count
    return filled


def _write_sparse(response, buffer: bytearray, first: int, target: Path, total: int | None, report) -> None:
    """Stream raw data into the volume, skipping zero chunks so the volume stays sparse like the source."""
    done, last, count = 0, 0.0, first
    with open(target, "wb") as out:
        while count:
            if buffer.count(0, 0, count) == count:
                out.seek(count, os.SEEK_CUR)
            else:
                out.write(memoryview(buffer)[:count])
            done += count
            if time.monotonic() - last > 0.25:
                report(done, total)
                last = time.monotonic()
            count = response.readinto(buffer)
        out.truncate(done)
    if total and done < total:  # http.client reads a cut body as a short one
        raise Retryable(f"Unable to process data: unexpected EOF after {done} of {total} bytes")


class Link:
    """The network between the importer and vSphere: unlimited by default, or ``mib_per_s`` (the lab's
    ``copy_mib_per_s``, e.g. VDDK over NBD on a 1 GbE host link), which holds each copy to that rate."""

    def __init__(self, mib_per_s: float | None = None):
        self.rate = (mib_per_s or 0) * (1 << 20)

    def copy(self, src: int, dst: int, start: int, end: int, report=None, size: int = 0) -> None:
        """Copy [start, end) of ``src`` to the same offsets of ``dst``, in the kernel, at the link's rate."""
        began, sent, last = time.monotonic(), 0, 0.0
        while start < end:
            copied = os.copy_file_range(src, dst, min(end - start, 8 << 20 if self.rate else 64 << 20), start, start)
            if copied == 0:
                break
            start, sent = start + copied, sent + copied
            if self.rate:
                time.sleep(max(0.0, began + sent / self.rate - time.monotonic()))
            if report and time.monotonic() - last > 0.25:
                report(start, size)
                last = time.monotonic()


def _copy_extents(source: Path, claim: dict, target: Path, report, link: Link = Link()) -> None:
    """Copy only the data extents of a raw file (VDDK's allocated blocks), in the kernel, into a sparse volume."""
    size = source.stat().st_size
    if size > claim["usable"]:
        raise ImportFailed(_too_small(size, claim["usable"]))
    with open(source, "rb") as src, open(target, "wb") as dst:
        dst.truncate(size)
        offset = 0
        while offset < size:
            try:
                start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError:  # no data after offset
                break
            end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            link.copy(src.fileno(), dst.fileno(), start, end, report, size)
            offset = end
    report(size, size)


def _data_file(descriptor: Path, backing: str) -> Path:
    """A VMDK descriptor's flat extent (what VDDK reads), or the disk file itself when it holds the data."""
    if not descriptor.exists():
        raise ImportFailed(f"Unable to connect to vddk data source: file {backing} not found on the datastore (404)")
    with open(descriptor, "rb") as handle:
        head = handle.read(64 << 10)
    if b"# Disk DescriptorFile" not in head[:1024]:  # a sparse VMDK or raw data: the file holds the disk
        return descriptor
    m = _EXTENT.search(head.decode(errors="replace"))
    if m is None:
        raise ImportFailed(f"Unable to process data: {backing} is a descriptor without a flat extent")
    extent = descriptor.parent / m.group("file")
    if not extent.exists():
        raise ImportFailed(
            f"Unable to connect to vddk data source: file {extent.name} not found on the datastore (404)"
        )
    return extent


def _snapshot(vm, wanted: str):
    """A snapshot of ``vm`` by its moref or its name, as govmomi's FindSnapshot takes either."""

    def walk(trees):
        for tree in trees or ():
            if wanted in (tree.snapshot._moId, tree.name):
                return tree.snapshot
            if (found := walk(tree.childSnapshotList)) is not None:
                return found
        return None

    found = walk(vm.snapshot.rootSnapshotList if vm.snapshot else ())
    if found is None:
        raise ImportFailed(f"Could not find current snapshot {wanted}: no such snapshot of VM {vm.name}")
    return found


def _snapshot_disk(snapshot, backing: str):
    from pyVmomi import vim

    for device in snapshot.config.hardware.device:
        if isinstance(device, vim.vm.device.VirtualDisk) and device.backing.fileName == backing:
            return device
    raise ImportFailed(f"Could not find matching disk in current snapshot: {backing}")


def image_info(path: Path) -> dict:
    result = subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ImportFailed(f"Unable to process data: qemu-img: {result.stderr.strip()}")
    return json.loads(result.stdout)


class Cdi:
    def __init__(self, api: Api, state: Path, config: dict):
        self.api = api
        self.volumes = state / "volumes"
        self.datastores = Path(config.get("datastore_root") or state / "datastores")  # the lab vCenter's
        self._sessions: dict[tuple[str, str, str], object] = {}  # VDDK's vCenter sessions, by credentials
        self._lock = threading.Lock()
        self.registry = Path(config.get("registry_dir") or state / "registry")
        self.link = Link(config.get("copy_mib_per_s"))  # vddk reads over the lab's idea of the network
        self.faults = Faults(state)
        self.uploads: dict[str, tuple[str, str]] = {}  # upload token -> (namespace, pvc)
        self.upload_done: dict[tuple[str, str], asyncio.Event] = {}
        api.on_create[R["uploadtokenrequests"].key] = self.token_request

    def backing(self, ns: str, name: str) -> Path:
        return self.volumes / ns / f"{name}.img"

    # ---- status helpers ----

    def _status(self, ns: str, name: str, phase: str, progress: str | None = None, **conditions) -> None:
        def mutate(status: dict) -> None:
            status["phase"] = phase
            if progress is not None:
                status["progress"] = progress
            for kind, (value, reason, message) in conditions.items():
                condition(status, kind, value, reason, message)

        self.api.set_status(R["datavolumes"], ns, name, mutate)

    def _fail(self, dv: dict, message: str) -> None:
        ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
        self._status(ns, name, "Failed", Ready=("False", "", ""), Running=("False", "Error", message))
        event(self.api, dv, "ErrImportFailed", message, "Warning")

    # ---- reconcile ----

    async def reconcile(self, kind: str, dv: dict) -> None:
        ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
        if kind == "DELETED":
            self.backing(ns, name).unlink(missing_ok=True)
            return
        dv = self.api.store.get(R["datavolumes"], ns, name)
        if dv is None or dv.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        if not dv.get("status", {}).get("phase"):  # CDI's first word on a new DataVolume
            self._status(
                ns,
                name,
                "Pending",
                "N/A",
                Bound=("False", "Pending", f"PVC {name} Pending"),
                Ready=("False", "", ""),
                Running=("False", "", ""),
            )
        claim = self.claim(dv)
        if claim is None:
            return
        stages = dv["spec"].get("checkpoints") or []
        if stages and all(self._copied(ns, name, c["current"]) for c in stages):  # between stages, or the last
            if not dv["spec"].get("finalCheckpoint"):
                return
            self._succeeded(dv)
            return
        source = dv["spec"].get("source") or {}
        target = self.backing(ns, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.faults.of(dv) == "import-stalls":
            if dv.get("status", {}).get("phase") != "ImportInProgress":  # once: a status written wakes this again
                self._scheduled(ns, name)
            return  # and no byte more, ever
        try:
            if "blank" in source:
                with open(target, "wb") as handle:
                    handle.truncate(claim["usable"])
            elif "http" in source or "vddk" in source:
                await self.with_restarts(dv, claim, target)
            elif "registry" in source:
                await self.import_registry(dv, source["registry"], claim, target)
            elif "upload" in source:
                await self.await_upload(dv, claim, target)
            else:
                raise ImportFailed(
                    f"unsupported source {sorted(source)}: the lab CDI takes http, vddk, upload, registry, blank"
                )
        except ImportFailed as exc:
            self._fail(dv, str(exc))
            return
        if stages and not dv["spec"].get("finalCheckpoint"):
            self._status(
                ns, name, "Paused", Running=("False", "Paused", f"Multistage import into PVC {name} is paused")
            )
            return
        self._succeeded(dv)

    def _succeeded(self, dv: dict) -> None:
        ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
        self._status(
            ns,
            name,
            "Succeeded",
            "100.0%",
            Bound=("True", "Bound", f"PVC {name} Bound"),
            Ready=("True", "", ""),
            Running=("False", "Completed", "Import Complete"),
        )
        event(self.api, dv, "ImportSucceeded", "Successfully imported into PVC " + name)

    async def with_restarts(self, dv: dict, claim: dict, target: Path) -> None:
        """Import from vSphere; a lost connection restarts the importer (``status.restartCount``), as CDI's pod does."""
        ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
        source = dv["spec"]["source"]
        for restarts in range(RESTARTS + 1):
            try:
                if "http" in source:
                    return await self.import_http(dv, source["http"], claim, target)
                return await self.import_vddk(dv, source["vddk"], claim, target)
            except Retryable as exc:
                if restarts == RESTARTS:
                    raise ImportFailed(str(exc)) from None
                self.api.set_status(R["datavolumes"], ns, name, lambda s: s.update(restartCount=restarts + 1))
                self._status(ns, name, "ImportInProgress", Running=("False", "Error", str(exc)))
                event(self.api, dv, "Error", str(exc), "Warning")
                await asyncio.sleep(RESTART_SECONDS)  # the importer pod's restart back-off

    def claim(self, dv: dict) -> dict | None:
        """Create and bind the DataVolume's PVC; None (and a Pending DataVolume) if it cannot bind."""
        ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
        spec = dv["spec"].get("storage") or dv["spec"].get("pvc") or {}
        size = parse_quantity(((spec.get("resources") or {}).get("requests") or {}).get("storage", "0"))
        classes = list(self.api.store.list(R["storageclasses"], None))
        wanted = spec.get("storageClassName") or next(
            (
                c["metadata"]["name"]
                for c in classes
                if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"
            ),
            "",
        )
        mode = spec.get("volumeMode") or "Filesystem"
        pvc = self.api.store.get(R["persistentvolumeclaims"], ns, name)
        if pvc is None:
            try:
                pvc = self._create_claim(dv, ns, name, spec, mode, wanted, size)
            except ApiError as exc:
                if exc.code != 403:
                    raise
                event(self.api, dv, "ErrExceededQuota", exc.message, "Warning")  # as CDI says it
                return None
        if pvc.get("status", {}).get("phase") == "Bound":
            return {"size": size, "usable": int(size * (1 - FS_OVERHEAD)) if mode == "Filesystem" else size}
        sc = next((c for c in classes if c["metadata"]["name"] == wanted), None)
        problem = None
        if sc is None:
            problem = (
                f'storageclass.storage.k8s.io "{wanted}" not found'
                if wanted
                else "no storage class is set and no default StorageClass exists"
            )
        else:
            capacity = (
                quantity_gi(sc["metadata"].get("annotations", {}).get("lab.vmwave.io/capacity", "4096Gi")) * 1024**3
            )
            used = sum(
                parse_quantity(p["status"]["capacity"]["storage"])
                for p in self.api.store.list(R["persistentvolumeclaims"], None)
                if p.get("status", {}).get("phase") == "Bound" and p["spec"].get("storageClassName") == wanted
            )
            if used + size > capacity:
                problem = (
                    f'failed to provision volume with StorageClass "{wanted}": insufficient capacity: '
                    f"{size} bytes requested, {capacity - used} bytes free"
                )
        if problem:
            if pvc.get("status", {}).get("phase") != "Pending":
                self.api.set_status(R["persistentvolumeclaims"], ns, name, lambda s: s.update(phase="Pending"))
                event(self.api, pvc, "ProvisioningFailed", problem, "Warning")
            return None
        self.api.set_status(
            R["persistentvolumeclaims"],
            ns,
            name,
            lambda s: s.update(phase="Bound", accessModes=pvc["spec"]["accessModes"], capacity={"storage": str(size)}),
        )
        return {"size": size, "usable": int(size * (1 - FS_OVERHEAD)) if mode == "Filesystem" else size}

    def _create_claim(self, dv: dict, ns: str, name: str, spec: dict, mode: str, storage_class: str, size: int) -> dict:
        return self.api.create(
            R["persistentvolumeclaims"],
            ns,
            {
                "metadata": {
                    "name": name,
                    "labels": {"app": "containerized-data-importer"},
                    "annotations": {"cdi.kubevirt.io/storage.contentType": "kubevirt"},
                    "ownerReferences": [
                        {
                            "apiVersion": dv["apiVersion"],
                            "kind": "DataVolume",
                            "name": name,
                            "uid": dv["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {
                    "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                    "volumeMode": mode,
                    "storageClassName": storage_class,
                    "resources": {"requests": {"storage": str(size)}},
                },
            },
        )

    # ---- sources ----

    def _http_context(self, ns: str, spec: dict) -> ssl.SSLContext | None:
        if not spec.get("certConfigMap"):
            return None
        cm = self.api.store.get(R["configmaps"], ns, spec["certConfigMap"])
        if cm is None:
            raise ImportFailed(f'configmap "{spec["certConfigMap"]}" not found')
        return ssl.create_default_context(cadata="\n".join((cm.get("data") or {}).values()))

    def _secret(self, ns: str, name: str) -> dict[str, str]:
        secret = self.api.store.get(R["secrets"], ns, name)
        if secret is None:
            raise ImportFailed(f'secret "{name}" not found')
        values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        return {**values, **(secret.get("stringData") or {})}

    def _credentials(self, ns: str, name: str) -> tuple[str, str]:
        """CDI's ``secretRef``: the keys ``accessKeyId`` and ``secretKey``."""
        values = self._secret(ns, name)
        if "accessKeyId" not in values or "secretKey" not in values:
            raise ImportFailed(f'secret "{name}" has no accessKeyId and secretKey')
        return values["accessKeyId"], values["secretKey"]

    def _headers(self, ns: str, spec: dict) -> dict[str, str]:
        lines = list(spec.get("extraHeaders") or [])
        for secret_name in spec.get("secretExtraHeaders") or []:
            lines += list(self._secret(ns, secret_name).values())
        headers = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line)}
        if spec.get("secretRef"):
            user, password = self._credentials(ns, spec["secretRef"])
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return headers

    def _reporter(self, ns: str, name: str):
        loop = asyncio.get_running_loop()

        def report(done: int, total: int | None) -> None:
            text = f"{100 * done / total:.2f}%" if total else "N/A"
            loop.call_soon_threadsafe(lambda: self._status(ns, name, "ImportInProgress", text))

        return report

    def _scheduled(self, ns: str, name: str) -> None:
        self._status(
            ns,
            name,
            "ImportScheduled",
            "N/A",
            Bound=("True", "Bound", f"PVC {name} Bound"),
            Ready=("False", "", ""),
            Running=("False", "", ""),
        )
        self._status(ns, name, "ImportInProgress", "0.00%", Running=("True", "Pod is running", ""))

    async def import_http(self, dv: dict, spec: dict, claim: dict, target: Path) -> None:
        ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
        self._scheduled(ns, name)
        request = urllib.request.Request(spec.get("url", ""), headers=self._headers(ns, spec))
        context = self._http_context(ns, spec)
        await asyncio.to_thread(self._stream_http, request, context, claim, target, self._reporter(ns, name))

    def _stream_http(self, request, context, claim: dict, target: Path, report) -> None:
        try:
            response = urllib.request.urlopen(request, context=context, timeout=60)
        except urllib.error.HTTPError as exc:
            raise ImportFailed(
                f"Unable to connect to http data source: expected status code 200, got {exc.code}. "
                f"Status: {exc.code} {exc.reason}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise Retryable(f"Unable to connect to http data source: {getattr(exc, 'reason', exc)}") from None
        try:
            self._receive(response, claim, target, report)
        except (OSError, http.client.HTTPException) as exc:
            raise Retryable(f"Unable to process data: unexpected EOF: {exc!r}") from None

    def _receive(self, response, claim: dict, target: Path, report) -> None:
        with response:
            total = int(response.headers.get("Content-Length") or 0) or None
            buffer = bytearray(CHUNK)  # readinto one buffer: read() allocates per chunk, 2.7x slower
            first = _read_full(response, memoryview(buffer))
            kind = sniff(bytes(buffer[: min(first, 4096)]))
            if kind == "text":
                raise ImportFailed("Unable to process data: the source is not a disk image (its content is text)")
            if kind == "raw":
                if total and total > claim["usable"]:
                    raise ImportFailed(_too_small(total, claim["usable"]))
                _write_sparse(response, buffer, first, target, total, report)
                return
            scratch = target.with_suffix(".scratch")  # formats the importer cannot stream: CDI's scratch space
            try:
                with open(scratch, "wb") as out:
                    out.write(buffer[:first])
                    while count := response.readinto(buffer):
                        out.write(memoryview(buffer)[:count])
                self._store_image(scratch, claim, target)
            finally:
                scratch.unlink(missing_ok=True)

    async def import_vddk(self, dv: dict, spec: dict, claim: dict, target: Path) -> None:
        ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
        if not spec.get("initImageURL") and self.api.store.get(R["configmaps"], "cdi", "v2v-vmware") is None:
            raise ImportFailed(
                "Unable to connect to vddk data source: no VDDK image: set initImageURL or the "
                "vddk-init-image key of ConfigMap cdi/v2v-vmware"
            )
        self._scheduled(ns, name)
        user, password = self._credentials(ns, spec.get("secretRef", ""))
        source = await asyncio.to_thread(self._vddk_disk, spec, user, password)
        if dv["spec"].get("checkpoints"):
            return await self._import_stages(dv, spec, claim, target, source, user, password)
        with open(source, "rb") as handle:
            raw = sniff(handle.read(4096)) == "raw"
        if raw:
            await asyncio.to_thread(_copy_extents, source, claim, target, self._reporter(ns, name), self.link)
        else:  # a hosted (sparse) VMDK: VDDK reads its virtual disk
            await asyncio.to_thread(self._store_image, source, claim, target, True)

    def _vddk_disk(self, spec: dict, user: str, password: str) -> Path:
        """What VDDK does before it reads: the thumbprint, the login, the VM by BIOS UUID, its disk by backing file."""
        from pyVmomi import vim

        u = urllib.parse.urlparse(spec.get("url", ""))
        try:
            der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((u.hostname, u.port or 443), timeout=30))
        except OSError as exc:
            raise Retryable(f"Unable to connect to vddk data source: {exc.strerror or exc}") from None
        digest = hashlib.sha1(der).hexdigest().upper()
        actual = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
        if spec.get("thumbprint", "").upper() != actual:
            raise ImportFailed(
                f"Unable to connect to vddk data source: the thumbprint {spec.get('thumbprint')!r} "
                f"does not match the server's certificate ({actual})"
            )
        si = self._session(u, user, password)
        backing = spec.get("backingFile", "")
        vm = si.content.searchIndex.FindByUuid(None, spec.get("uuid", ""), True, False)
        if vm is None:
            raise ImportFailed(f"disk {backing} is not a disk of a VM: no VM has BIOS UUID {spec.get('uuid')}")
        disks = [d.backing.fileName for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
        if backing not in disks:
            raise ImportFailed(f"disk {backing} is not a disk of VM {vm.name} (it has {', '.join(disks)})")
        datastore, _, path = backing.partition("] ")
        found = sorted(
            self.datastores.glob(f"*/{glob.escape(datastore.lstrip('['))}/{glob.escape(path)}")
        )  # per datacenter
        return _data_file(found[0] if found else self.datastores / datastore.lstrip("[") / path, backing)

    async def _import_stages(
        self, dv: dict, spec: dict, claim: dict, target: Path, source: Path, user: str, password: str
    ) -> None:
        """Copy each checkpoint not yet copied: the whole disk for the first, then what changed since ``previous``.

        ``previous`` is a changeId or a snapshot, as CDI's vddk importer takes it; the
        changed extents come from the lab vCenter's QueryChangedDiskAreas. Copied
        checkpoints are noted on the PVC, so a paused import resumes at the next one.
        """
        ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
        for checkpoint in dv["spec"]["checkpoints"]:
            if self._copied(ns, name, checkpoint["current"]):
                continue
            self._status(
                ns,
                name,
                "ImportInProgress",
                "0.00%",
                Running=("True", "", f"Copying checkpoint {checkpoint['current']}"),
            )
            if not checkpoint.get("previous"):
                await asyncio.to_thread(_copy_extents, source, claim, target, self._reporter(ns, name), self.link)
            else:
                await asyncio.to_thread(self._copy_changes, spec, checkpoint, source, target, user, password)
            self._mark_copied(ns, name, checkpoint["current"])

    def _copied(self, ns: str, name: str, current: str) -> bool:
        pvc = self.api.store.get(R["persistentvolumeclaims"], ns, name) or {}
        return f"{COPIED}.{current}" in (pvc.get("metadata", {}).get("annotations") or {})

    def _mark_copied(self, ns: str, name: str, current: str) -> None:
        pvc = self.api.store.get(R["persistentvolumeclaims"], ns, name)
        pvc["metadata"].setdefault("annotations", {})[f"{COPIED}.{current}"] = secrets.token_hex(
            8
        )  # CDI: the pod's UID
        self.api.store.update(R["persistentvolumeclaims"], pvc)

    def _copy_changes(self, spec: dict, checkpoint: dict, source: Path, target: Path, user: str, password: str) -> None:
        from pyVmomi import vim, vmodl

        si = self._session(urllib.parse.urlparse(spec.get("url", "")), user, password)
        vm = si.content.searchIndex.FindByUuid(None, spec.get("uuid", ""), True, False)
        current = _snapshot(vm, checkpoint["current"])
        disk = _snapshot_disk(current, spec.get("backingFile", ""))
        previous = checkpoint["previous"]
        change_id = (
            previous
            if CHANGE_ID.match(previous)
            else _snapshot_disk(_snapshot(vm, previous), spec.get("backingFile", "")).backing.changeId
        )
        offset = 0
        with open(source, "rb") as src, open(target, "r+b") as dst:
            while offset < disk.capacityInBytes:
                try:
                    changed = vm.QueryChangedDiskAreas(
                        snapshot=current, deviceKey=disk.key, startOffset=offset, changeId=change_id
                    )
                except (vmodl.fault.InvalidArgument, vim.fault.FileFault) as exc:
                    raise ImportFailed(f"Unable to query changed areas: {exc.msg}") from None
                if not changed.changedArea:
                    break
                for area in changed.changedArea:
                    self.link.copy(src.fileno(), dst.fileno(), area.start, area.start + area.length)
                offset = changed.startOffset + changed.length

    def _session(self, u: urllib.parse.ParseResult, user: str, password: str):
        """A logged-in vCenter session for these credentials: VDDK's connection, kept while it stays valid."""
        from pyVim.connect import SmartConnect
        from pyVmomi import vim

        key = (u.netloc, user, hashlib.sha256(password.encode()).hexdigest())
        with self._lock:
            si = self._sessions.get(key)
        if si is not None:
            try:
                if si.content.sessionManager.currentSession is not None:
                    return si
            except vim.fault.NotAuthenticated:
                pass
        try:
            si = SmartConnect(
                host=u.hostname,
                port=u.port or 443,
                user=user,
                pwd=password,
                sslContext=ssl._create_unverified_context(),
            )  # pinned by the thumbprint checked first
        except vim.fault.InvalidLogin:
            raise ImportFailed(
                "Unable to connect to vddk data source: Cannot complete login due to an incorrect user name or password"
            ) from None
        with self._lock:
            self._sessions[key] = si
        return si

    @staticmethod
    def _store_image(source: Path, claim: dict, target: Path, keep_source: bool = False) -> None:
        """Check the image with qemu-img and write it raw into the volume, as CDI's importer does.

        A raw scratch file becomes the volume; with ``keep_source`` (a datastore file) it is converted instead.
        """
        with open(source, "rb") as handle:
            head = handle.read(4096)
        info = image_info(source)
        if info.get("format") == "raw" and sniff(head) == "text":
            raise ImportFailed("Unable to process data: the source is not a disk image (its content is text)")
        if info["virtual-size"] > claim["usable"]:
            raise ImportFailed(_too_small(info["virtual-size"], claim["usable"]))
        if info.get("format") == "raw" and not keep_source:
            shutil.move(source, target)
        else:
            result = subprocess.run(
                ["qemu-img", "convert", "-O", "raw", str(source), str(target)], capture_output=True, text=True
            )
            if result.returncode != 0:
                raise ImportFailed(f"Unable to process data: qemu-img convert: {result.stderr.strip()}")

    async def import_registry(self, dv: dict, spec: dict, claim: dict, target: Path) -> None:
        """``docker://NAME[:TAG]`` is simulated by REGISTRY_DIR/NAME[_TAG].{qcow2,img,raw}."""
        url = spec.get("url", "")
        image = url.removeprefix("docker://").rsplit("/", 1)[-1].replace(":", "_")
        found = [p for p in sorted(self.registry.glob(f"{image}.*"))] if self.registry.is_dir() else []
        if not found:
            raise ImportFailed(
                f"Unable to process data: failed to pull image {url}: not found in the lab registry ({self.registry})"
            )
        copy = target.with_suffix(".download")
        shutil.copyfile(found[0], copy)
        try:
            await asyncio.to_thread(self._store_image, copy, claim, target)
        finally:
            copy.unlink(missing_ok=True)

    async def await_upload(self, dv: dict, claim: dict, target: Path) -> None:
        ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
        done = self.upload_done.setdefault((ns, name), asyncio.Event())
        self._status(
            ns,
            name,
            "UploadReady",
            "N/A",
            Bound=("True", "Bound", f"PVC {name} Bound"),
            Ready=("False", "", ""),
            Running=("True", "Pod is running", ""),
        )
        await done.wait()
        self.upload_done.pop((ns, name), None)
        error = getattr(done, "error", None)
        if error:
            raise ImportFailed(error)

    # ---- upload API ----

    def token_request(self, obj: dict) -> dict:
        token = secrets.token_urlsafe(24)
        self.uploads[token] = (obj["metadata"]["namespace"], obj["spec"]["pvcName"])
        obj["status"] = {"token": token}
        return obj

    async def upload(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token not in self.uploads:
            return JSONResponse({"message": "authentication failed: invalid upload token"}, status_code=401)
        ns, name = self.uploads[token]
        done = self.upload_done.get((ns, name))
        claim = (
            self.claim(self.api.store.get(R["datavolumes"], ns, name) or {"spec": {}, "metadata": {}}) if done else None
        )
        if done is None or claim is None:
            return JSONResponse({"message": f"PVC {ns}/{name} is not ready for upload"}, status_code=503)
        target = self.backing(ns, name)
        staging = target.with_suffix(".upload")
        with open(staging, "wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        try:
            await asyncio.to_thread(self._store_image, staging, claim, target)
        except ImportFailed as exc:
            done.error = str(exc)
            done.set()
            return JSONResponse({"message": str(exc)}, status_code=400)
        finally:
            staging.unlink(missing_ok=True)
        self.uploads.pop(token, None)
        done.set()
        return Response(status_code=200)

    def routes(self) -> list[Route]:
        return [Route("/v1beta1/upload", self.upload, methods=["POST", "PUT"])]
