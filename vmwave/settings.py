"""Every setting a run reads, validated once at the edge: CLI flags and flow parameters over VMWAVE_* variables.

The CLI and the flows build one ``Settings`` and pass it down as a value;
nothing below them reads the environment. A setting holds where a secret is
(a password file, a Prefect Secret block's name, a kubeconfig path), never the
secret, so a ``Settings`` may be logged or shown in the Prefect UI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vmwave.errors import InputError

STATE_DIR = Path("~/.local/state/vmwave")  # XDG_STATE_HOME wins when set
CACHE_DIR = Path("~/.cache/vmwave")  # XDG_CACHE_HOME wins when set
MAX_TIMEOUT = 7 * 86400  # seconds: no step waits longer than a week
CONVERSION_IMAGE = "quay.io/kubev2v/forklift-virt-v2v:latest"  # Forklift's image ships virt-v2v-in-place


@dataclass(frozen=True)
class VCenter:
    """Where and how to connect. Holds where the password is, never the password
    (``vmwave.adapters.vsphere.password`` reads it)."""

    url: str
    user: str
    password_file: Path | None = None
    secret_block: str | None = None  # a Prefect Secret block name
    ca_file: Path | None = None
    thumbprint: str | None = None
    insecure: bool = False


class Timeouts(BaseModel):
    """Seconds each waiting step may take; ``VMWAVE_TIMEOUTS=agent=180,boot=300`` changes some."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    shutdown: float = Field(300, gt=0, le=MAX_TIMEOUT, description="clean guest shutdown before the copy")
    convert: float = Field(
        7200, gt=0, le=MAX_TIMEOUT, description="the in-place guest conversion (virt-v2v-in-place pod)"
    )
    import_: float = Field(3600, gt=0, le=MAX_TIMEOUT, alias="import", description="CDI import of every disk")
    boot: float = Field(600, gt=0, le=MAX_TIMEOUT, description="the VirtualMachine reaching Running")
    agent: float = Field(600, gt=0, le=MAX_TIMEOUT, description="the guest agent connecting")

    @property
    def until_verified(self) -> float:
        """The longest a VM may take from its shutdown to its verification: how long a VM sharing a disk waits for
        the others of its group."""
        return self.shutdown + self.import_ + self.convert + self.boot + self.agent

    @classmethod
    def parse(cls, text: str) -> "Timeouts":
        """``agent=180,boot=300`` over the defaults."""
        given: dict[str, float] = {}
        steps = [f.alias or name for name, f in cls.model_fields.items()]
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, value = item.partition("=")
            if key not in steps or not value.isascii() or not value.replace(".", "", 1).isdigit():
                raise InputError(
                    "VMWAVE_TIMEOUTS",
                    item,
                    "is not STEP=SECONDS for a known step",
                    f"write e.g. agent=180,boot=300; steps: {', '.join(steps)}",
                )
            given[key] = float(value)
        try:
            return cls(**given)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(
                "VMWAVE_TIMEOUTS",
                str(first["loc"][0]),
                f"{first['msg']} (got {first.get('input')!r})",
                "give each step a number of seconds above 0, e.g. agent=180",
            ) from None


class Settings(BaseModel):
    """What a command or flow run needs besides the plan."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    vcenter: VCenter | None = None
    kubeconfig: Path | None = None
    maps: Path | None = None
    ledger: str = Field(description="SQLAlchemy URL of the ledger")
    workdir: Path = Field(description="where a worker keeps each VM's conversion log; never a disk")
    in_flight: int = Field(10, ge=1, le=500, description="VMs of a wave migrating at once in this worker")
    per_host: int | None = Field(None, ge=1, description="VMs in flight per ESXi host; the plan's limit when unset")
    per_datastore: int = Field(10, ge=1, description="VMs in flight per datastore")
    timeouts: Timeouts = Timeouts()
    vddk_image: str | None = Field(
        None, description="CDI's VDDK init image: disks are read through VDDK (else over HTTPS from the datastore)"
    )
    conversion_image: str = Field(CONVERSION_IMAGE, description="the image whose virt-v2v-in-place converts guests")
    virtio_win: Path | None = Field(
        None, description="the virtio-win ISO or directory inside the conversion image (Windows guests)"
    )
    v2v_accel: Literal["kvm", "tcg"] | None = Field(None, description="tcg: libguestfs without KVM on the nodes")
    disable_plugins: frozenset[str] = Field(frozenset(), description="guest-OS plugins switched off, by name")
    exporter_port: int = Field(9750, ge=1, le=65535, description="where `vmwave exporter` serves /metrics")
    max_file_mb: int = Field(64, ge=1, le=4096, description="the largest plan, maps, rules or inventory file read")

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb << 20

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, vcenter: Mapping[str, Any] | None = None, **given: Any
    ) -> "Settings":
        """Given values (flags, parameters) over the environment's VMWAVE_* variables over the defaults."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {key: _pick(given.get(key), env, name) for key, name in ENV.items()}
        values["timeouts"] = given.get("timeouts") or (
            Timeouts.parse(env["VMWAVE_TIMEOUTS"]) if env.get("VMWAVE_TIMEOUTS") else Timeouts()
        )
        values["ledger"] = ledger_url(values["ledger"], env)
        if isinstance(values["disable_plugins"], str):
            values["disable_plugins"] = frozenset(
                filter(None, (n.strip() for n in values["disable_plugins"].split(",")))
            )
        values["workdir"] = values["workdir"] or _home(env, "XDG_CACHE_HOME", CACHE_DIR) / "work"
        values["vcenter"] = _vcenter(
            {key: _pick((vcenter or {}).get(key), env, name) for key, name in VCENTER_ENV.items()},
            bool((vcenter or {}).get("insecure")),
        )
        try:
            return cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise _input_error(exc) from None

    def need_vcenter(self) -> VCenter:
        if self.vcenter is None:
            raise InputError(
                "vCenter connection",
                "url",
                "is not set",
                "pass --url and --user or set VMWAVE_VCENTER_URL and VMWAVE_VCENTER_USER "
                '(for the lab: eval "$(vmwave lab up)")',
            )
        return self.vcenter

    def need_kubeconfig(self) -> Path:
        if self.kubeconfig is None or not self.kubeconfig.is_file():
            raise InputError(
                str(self.kubeconfig or "VMWAVE_KUBECONFIG"),
                "",
                "kubeconfig not found",
                "set VMWAVE_KUBECONFIG or --kubeconfig (lab: `vmwave lab up`)",
            )
        return self.kubeconfig

    def need_maps(self) -> Path:
        if self.maps is None:
            raise InputError("--maps", "", "no maps file", "pass --maps FILE or set VMWAVE_MAPS (the lab prints one)")
        return self.maps


ENV = {
    "kubeconfig": "VMWAVE_KUBECONFIG",
    "maps": "VMWAVE_MAPS",
    "ledger": "VMWAVE_LEDGER",
    "workdir": "VMWAVE_WORKDIR",
    "in_flight": "VMWAVE_IN_FLIGHT",
    "per_host": "VMWAVE_PER_HOST",
    "per_datastore": "VMWAVE_PER_DATASTORE",
    "vddk_image": "VMWAVE_VDDK_IMAGE",
    "conversion_image": "VMWAVE_CONVERSION_IMAGE",
    "virtio_win": "VMWAVE_VIRTIO_WIN",
    "v2v_accel": "VMWAVE_V2V_ACCEL",
    "disable_plugins": "VMWAVE_DISABLE_PLUGINS",
    "exporter_port": "VMWAVE_EXPORTER_PORT",
    "max_file_mb": "VMWAVE_MAX_FILE_MB",
}
VCENTER_ENV = {
    "url": "VMWAVE_VCENTER_URL",
    "user": "VMWAVE_VCENTER_USER",
    "password_file": "VMWAVE_VCENTER_PASSWORD_FILE",
    "secret_block": "VMWAVE_VCENTER_SECRET_BLOCK",
    "ca_file": "VMWAVE_VCENTER_CA",
    "thumbprint": "VMWAVE_VCENTER_THUMBPRINT",
}
FIXES = {
    "in_flight": "a whole number of VMs, at least 1",
    "per_host": "a whole number, at least 1",
    "per_datastore": "a whole number, at least 1",
    "v2v_accel": "kvm or tcg",
    "exporter_port": "a TCP port, 1-65535",
    "max_file_mb": "a number of MiB from 1 to 4096",
}


def _pick(value: Any, env: Mapping[str, str], name: str) -> Any:
    return value if value not in (None, "") else (env.get(name) or None)


def _home(env: Mapping[str, str], xdg: str, default: Path) -> Path:
    return Path(env[xdg]) / "vmwave" if env.get(xdg) else default.expanduser()


def ledger_url(url: str | None, env: Mapping[str, str]) -> str:
    """A SQLAlchemy URL as given, a file path as SQLite, else a SQLite file in the user's state directory."""
    if url:
        return url if "://" in url else f"sqlite:///{Path(url).expanduser().resolve()}"
    return f"sqlite:///{_home(env, 'XDG_STATE_HOME', STATE_DIR) / 'ledger.db'}"


def _vcenter(values: dict[str, Any], insecure: bool) -> VCenter | None:
    if not values["url"] and not values["user"]:
        return None
    for key in ("url", "user"):
        if not values[key]:
            raise InputError(
                "vCenter connection",
                key,
                "is not set",
                f'pass --{key} or set {VCENTER_ENV[key]} (for the lab: eval "$(vmwave lab up)")',
            )
    if not values["password_file"] and not values["secret_block"]:
        raise InputError(
            "vCenter connection",
            "password",
            "no password source",
            f"set {VCENTER_ENV['password_file']} to a file holding it, or name a Prefect Secret block "
            "with --secret-block; a password is never taken on the command line",
        )
    paths = {k: Path(values[k]).expanduser() if values[k] else None for k in ("password_file", "ca_file")}
    return VCenter(
        url=vcenter_url(values["url"]),
        user=values["user"],
        secret_block=values["secret_block"],
        thumbprint=values["thumbprint"],
        insecure=insecure,
        **paths,
    )


def vcenter_url(url: str) -> str:
    """vCenter's URL, checked: https or http, a host, a numeric port, and no credentials in it (they would reach
    logs, errors and the DataVolumes' source URLs)."""
    parsed = urlparse(url if "://" in url else f"https://{url}")
    shown = parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl()
    if parsed.username is not None or parsed.password is not None:
        raise InputError(
            "vCenter connection",
            "url",
            f"{shown} has credentials in it",
            "remove them from the URL: set VMWAVE_VCENTER_USER and VMWAVE_VCENTER_PASSWORD_FILE",
        )
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InputError(
            "vCenter connection",
            "url",
            f"{shown} has a port that is not a number from 1 to 65535",
            "write https://HOST[:PORT]/sdk",
        ) from None
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise InputError("vCenter connection", "url", f"{shown} is not a vCenter URL", "write https://HOST[:PORT]/sdk")
    return parsed.geturl()


def _input_error(exc: ValidationError) -> InputError:
    """The first problem pydantic found, named by the variable a person sets."""
    first = exc.errors()[0]
    key = str(first["loc"][0]) if first["loc"] else ""
    name = ENV.get(key) or key
    return InputError(
        "settings",
        name,
        f"{first['msg']} (got {first.get('input')!r})",
        f"set {name} to {FIXES.get(key, 'a valid value')}",
    )
