"""How a guest is converted, as a guest-OS plugin decides it (``vmwave_conversion``) and a migration runs it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Conversion:
    """How a guest is converted: ``copy`` (disk-only, as it is) or ``virt-v2v`` (in place, in the cluster)."""

    tool: str  # copy | virt-v2v
    why: str
    options: tuple[str, ...] = ()  # extra virt-v2v-in-place arguments
    env: dict[str, str] = field(default_factory=dict)  # e.g. VIRTIO_WIN, a path in the conversion image
    needs: str = ""  # what must be configured before it can run, with how; "" when it can run now
    scripts: dict[str, str] = field(default_factory=dict)  # by file name: shell scripts run in the converted guest
    # after virt-v2v, in order, their output in the conversion log (Forklift's customization scripts); e.g. the
    # Linux plugin's pinning of interface names that keeps static IPs. A script's text is fixed: it never holds data
    # from vCenter (a VM's name, its addresses), which could then run as a command in the guest as root
    data: dict[str, str] = field(default_factory=dict)  # by file name: what the scripts read, put beside them
