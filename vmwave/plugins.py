"""The hooks guest-OS plugins implement, and the manager that finds them.

Built-in plugins (``vmwave_plugins``) and third-party ones register the same
way: an entry point in the ``vmwave`` group whose object carries
``vmwave.hookimpl`` functions. A VM's custom attribute ``vmwave.convert``
(``copy`` or ``virt-v2v``) is the operator's word and beats every plugin when
the plan is made; once made, the plan's ``convert`` is what a migration uses.
Plugins read settings from ``config``, never from the environment.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from vmwave import hookimpl, hookspec
from vmwave.domain.plan import TOOLS
from vmwave.domain.records import SourceVM
from vmwave.errors import VmwaveError
from vmwave.settings import Settings

GROUP = "vmwave"
CONVERT_ATTRIBUTE = "vmwave.convert"


@dataclass(frozen=True)
class Conversion:
    """How a VM's disks become KubeVirt disks: a plain ``qemu-img`` copy or a ``virt-v2v`` guest conversion."""

    tool: str  # copy | virt-v2v
    why: str
    options: tuple[str, ...] = ()  # extra virt-v2v arguments
    env: dict[str, str] = field(default_factory=dict)  # e.g. VIRTIO_WIN for Windows drivers
    needs: str = ""  # what must be configured before it can run, with how; "" when it can run now


class Specs:
    @hookspec(firstresult=True)
    def vmwave_conversion(self, vm: SourceVM, config: Settings | None) -> Conversion | None:
        """How to convert this VM's disks; the first plugin that answers decides.

        ``config`` is None while a plan is made (only the tool counts then); a plugin that
        misses a setting says so in ``needs`` rather than raising.
        """

    @hookspec
    def vmwave_smoke_checks(self, vm: SourceVM) -> list[dict]:
        """Smoke checks every VM of this kind gets after boot (``tcp``, ``http`` or ``agent`` checks)."""


class _Fallback:
    """What vmwave does when no plugin knows the guest: copy the disks as they are."""

    @hookimpl(trylast=True)
    def vmwave_conversion(self, vm: SourceVM, config: Settings | None) -> Conversion:
        return Conversion("copy", f"no plugin converts {vm.guest_family} guests ({vm.guest_id or 'no guest id'})")


@functools.cache
def manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(Specs)
    pm.register(_Fallback(), "fallback")
    for ep in entry_points(group=GROUP):
        if pm.get_plugin(ep.name) is None:
            pm.register(ep.load(), ep.name)
    return pm


def planned_tool(vm: SourceVM) -> str:
    """The tool a new plan records for ``vm``: its ``vmwave.convert`` attribute, else the plugins' choice."""
    wanted = vm.attributes.get(CONVERT_ATTRIBUTE, "").strip()
    if wanted:
        if wanted not in TOOLS:
            raise VmwaveError(f"{vm.name}: custom attribute {CONVERT_ATTRIBUTE}={wanted!r} is not one of {', '.join(TOOLS)}",
                              f"set it to {' or '.join(TOOLS)} in vCenter, or clear it to let the guest-OS plugin decide")
        return wanted
    return manager().hook.vmwave_conversion(vm=vm, config=None).tool


def conversion(vm: SourceVM, config: Settings, tool: str | None = None) -> Conversion:
    """How a migration converts ``vm``: with the plan's ``tool`` when it names one, the plugins' options for it."""
    tool = tool or planned_tool(vm)
    decided = manager().hook.vmwave_conversion(vm=vm, config=config)
    if decided.tool == tool:
        return decided
    return Conversion(tool, f"the plan says {tool}")


def smoke_checks(vm: SourceVM) -> list[dict]:
    return [check for checks in manager().hook.vmwave_smoke_checks(vm=vm) for check in checks or []]
