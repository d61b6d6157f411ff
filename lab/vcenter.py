"""Build, start and stop the lab vCenter (our Go program around govmomi's simulator)."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import random
import secrets
import shutil
import ssl
import subprocess
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from vmwave_lab import debian_guest
from vmwave_lab.process import LabError, read_ready, spawn
from vmwave_lab.process import stop as stop_process

GOVMOMI = Path("/usr/share/gocode/src/github.com/vmware/govmomi")
SOURCE = Path(__file__).parent / "vcsim" / "main.go"
APT_HINT = "install it with: apt-get install -y golang-go golang-github-vmware-govmomi-dev (or run ./dev setup)"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vmwave"


def default_state_dir() -> Path:
    return Path(os.environ.get("VMWAVE_LAB_DIR", cache_dir() / "lab"))


def binary() -> Path:
    """The compiled simulator, built on first use and cached by the hash of its source."""
    go = shutil.which("go")
    if go is None or not GOVMOMI.is_dir():
        raise LabError(f"the lab vCenter needs Go and govmomi from Debian; {APT_HINT}")
    sources = sorted(SOURCE.parent.glob("*.go"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in sources) + str(GOVMOMI.resolve()).encode()).hexdigest()[
        :16
    ]
    target = cache_dir() / f"vcsim-lab-{digest}"
    if target.exists():
        return target
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "vcsim-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test workers build once
        if not target.exists():
            env = dict(
                os.environ,
                GO111MODULE="off",
                GOPATH="/usr/share/gocode",
                GOCACHE=str(cache_dir() / "go-build"),
                GOFLAGS="",
            )
            tmp = target.with_suffix(".tmp")
            result = subprocess.run(
                [go, "build", "-o", str(tmp), *map(str, sources)], env=env, capture_output=True, text=True
            )
            if result.returncode != 0:
                raise LabError(f"building the lab vCenter failed:\n{result.stderr.strip()}\n{APT_HINT}")
            tmp.rename(target)
    return target


@dataclass(frozen=True)
class LabVCenter:
    url: str
    user: str
    password_file: Path
    ca_file: Path
    pid: int
    state_dir: Path
    info: dict

    def env(self) -> dict[str, str]:
        """What `vmwave` reads to connect; the password stays in its file."""
        return {
            "VMWAVE_VCENTER_URL": self.url,
            "VMWAVE_VCENTER_USER": self.user,
            "VMWAVE_VCENTER_PASSWORD_FILE": str(self.password_file),
            "VMWAVE_VCENTER_CA": str(self.ca_file),
        }

    @property
    def datastore_root(self) -> Path:
        return self.state_dir / "datastores"

    def inject(self, **faults: Any) -> None:
        """Arm faults (see lab/vcsim/faults.go): sdk_status, cut_download_after, fail_task, expire_sessions,
        datastore_fail."""
        self._post("/lab/faults", faults)

    def set_role(self, without: list[str]) -> None:
        """Give the lab user a role without these privileges (see lab/vcsim/privileges.go); [] gives them back."""
        self._post("/lab/role", {"without": list(without)})

    def _post(self, path: str, body: dict[str, Any]) -> None:
        base = urlparse(self.url)
        request = urllib.request.Request(
            f"{base.scheme}://{base.netloc}{path}",
            method="POST",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": "Basic "
                + base64.b64encode(f"{self.user}:{self.password_file.read_text().strip()}".encode()).decode(),
            },
        )
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            if response.status != 204:
                raise LabError(f"the lab vCenter did not take {path} {body}: {response.status}")


def running(state_dir: Path | None = None) -> LabVCenter | None:
    state = Path(state_dir or default_state_dir())
    info = read_ready(state, "vcenter")
    if info is None:
        return None
    return LabVCenter(info["url"], info["user"], state / "password", state / "ca.pem", info["pid"], state, info)


def _seeded(state: Path) -> int:
    try:
        return int((state / "progress").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def start(
    seed: dict[str, Any],
    state_dir: Path | None = None,
    listen: str = "127.0.0.1:0",
    timeout: float = 300.0,
    progress: Callable[[int], None] | None = None,
) -> LabVCenter:
    """Start a simulator for an expanded estate (see ``estate.expand``) and wait until it serves.

    ``progress`` is called with the number of VMs created so far while it seeds.
    """
    state = Path(state_dir or default_state_dir())
    if running(state):
        raise LabError(f"a lab vCenter already runs from {state}; stop it first with `vmwave lab down`")
    exe = binary()
    state.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(state / "datastores", ignore_errors=True)  # the simulated vCenter starts afresh each time
    password = state / "password"
    password.unlink(missing_ok=True)
    password.touch(mode=0o600)
    password.write_text(secrets.token_urlsafe(18) + "\n")
    # A new vCenter each time (its VMs are made afresh): its own instance UUID, as two real vCenters have.
    (state / "seed.json").write_text(json.dumps(dict(seed, listen=listen, instance_uuid=str(uuid.uuid4()))))
    (state / "progress").unlink(missing_ok=True)
    info = spawn(
        "vcenter",
        [str(exe), "-dir", str(state)],
        state,
        timeout,
        on_wait=(lambda: progress(_seeded(state))) if progress else None,
    )
    return LabVCenter(info["url"], seed["user"], password, state / "ca.pem", info["pid"], state, info)


def stop(state_dir: Path | None = None) -> bool:
    """Stop the simulator started from ``state_dir``; True if one was running."""
    return stop_process(Path(state_dir or default_state_dir()), "vcenter")


def write_disk(
    lab: LabVCenter, datacenter: str, datastore_path: str, data_mb: int, capacity_kb: int, seed: str
) -> Path:
    """A disk as ESXi stores a VMFS one (a descriptor ``NAME.vmdk`` and its raw, sparse ``NAME-flat.vmdk``), its first
    ``data_mb`` MiB bytes derived from ``seed``, written directly: thousands of disks take seconds. Returns the data
    file."""
    target = _datastore_file(lab, datacenter, datastore_path)
    flat = target.with_name(target.stem + "-flat.vmdk")
    rng = random.Random(seed)  # the same bytes for the same disk on every machine, and incompressible
    with open(flat, "wb") as handle:
        for _ in range(min(data_mb, capacity_kb >> 10)):
            handle.write(rng.randbytes(1 << 20))
        handle.truncate(capacity_kb * 1024)
    sectors = capacity_kb * 2
    cid = hashlib.sha256(seed.encode()).hexdigest()[:8]
    target.write_text(f"""# Disk DescriptorFile
version=1
CID={cid}
parentCID=ffffffff
createType="monolithicFlat"

# Extent description
RW {sectors} FLAT "{flat.name}" 0

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.geometry.cylinders = "{min(sectors // (16 * 63), 65535)}"
ddb.geometry.heads = "16"
ddb.geometry.sectors = "63"
ddb.adapterType = "ide"
""")
    return flat


def _datastore_file(lab: LabVCenter, datacenter: str, datastore_path: str) -> Path:
    """Where ``[datastore] path`` of ``datacenter`` is on this machine, its directory made and any old files gone."""
    datastore, _, path = datastore_path.partition("] ")
    target = lab.datastore_root / datacenter / datastore.lstrip("[") / path
    if not target.resolve().is_relative_to(lab.datastore_root.resolve()):  # names from an estate or an inventory
        raise LabError(f"{datacenter} {datastore_path} is not a path on a lab datastore: a name holds '..' or '/'")
    target.parent.mkdir(parents=True, exist_ok=True)
    for old in (target, target.with_name(target.stem + "-flat.vmdk")):
        old.unlink(missing_ok=True)
    return target


def seed_disks(lab: LabVCenter, seed: dict[str, Any]) -> int:
    """Give every disk with ``data_mb`` or ``image`` in the estate its bytes; returns how many disks were filled."""
    filled = 0
    for vm in seed["vms"]:
        for index, disk in enumerate(vm["disks"]):
            if disk.get("image") and disk["create"]:
                variant = disk["image"].partition("-")[2] or "ok"
                seed_disk(lab, vm["datacenter"], disk["file"], debian_guest.image(variant))
                filled += 1
            elif disk.get("data_mb") and disk["create"]:
                write_disk(
                    lab, vm["datacenter"], disk["file"], disk["data_mb"], disk["size_kb"], f"{vm['name']}/{index}"
                )
                filled += 1
    return filled


def seed_disk(lab: LabVCenter, datacenter: str, datastore_path: str, source: Path) -> Path:
    """Put real bytes behind a VM's disk, as if the VM had written them: the simulator's files are empty.

    The disk is stored as ESXi stores a thick or thin VMFS disk: a descriptor
    (``NAME.vmdk``) and its raw, sparse data file (``NAME-flat.vmdk``). Returns the data file.
    """
    target = _datastore_file(lab, datacenter, datastore_path)
    flat = target.with_name(target.stem + "-flat.vmdk")
    result = subprocess.run(
        ["qemu-img", "convert", "-q", "-O", "vmdk", "-o", "subformat=monolithicFlat", str(source), str(target)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise LabError(f"qemu-img could not write {datastore_path}: {result.stderr.strip()}")
    return flat
