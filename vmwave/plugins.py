"""The plugin manager: built-in and installed guest-OS plugins, registered the same way, and the calls vmwave makes.

Built-ins are listed by name (``BUILTINS``) and imported from ``vmwave_plugins``;
installed plugins are entry points of the group ``vmwave``, each known with
its distribution and version. A misspelled hook name is an error
(``check_pending``), a plugin that fails to load stops everything until it is
fixed or disabled (``VMWAVE_DISABLE_PLUGINS=name,...``), and neither is ever a
traceback. A VM's custom attribute ``vmwave.convert`` (``copy`` or
``virt-v2v``) is the operator's word and beats every plugin when the plan is
made; once made, the plan's ``convert`` is what a migration uses.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

import pluggy

from vmwave import __version__, hookimpl, hookspecs
from vmwave.domain.concerns import CRITICAL, SEVERITIES, Concern
from vmwave.domain.manifests import Customize, Target
from vmwave.domain.maps import Maps
from vmwave.domain.plan_file import TOOLS
from vmwave.domain.records import SourceVM
from vmwave.domain.smoke import parse_check
from vmwave.domain.validate import Node
from vmwave.errors import InputError, VmwaveError
from vmwave.domain.conversion import Conversion
from vmwave.settings import Settings

GROUP = "vmwave"
CONVERT_ATTRIBUTE = "vmwave.convert"
BUILTINS = {name: f"vmwave_plugins.{name}" for name in ("windows", "rhel", "debian", "suse", "linux")}

__all__ = [
    "Conversion",
    "PluginFailed",
    "PluginInfo",
    "PluginsBroken",
    "diagnose",
    "concerns",
    "conversion",
    "customizer",
    "for_planning",
    "loaded",
    "manager",
    "planned_tool",
    "preparation",
    "smoke_checks",
]


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as `vmwave plugins list` shows it."""

    name: str
    source: str  # "built-in", or the entry point's object reference
    distribution: str
    version: str
    hooks: tuple[str, ...] = ()
    error: str = ""  # why it could not be loaded; "" when it works
    disabled: bool = False


class PluginsBroken(VmwaveError):
    """A plugin could not be loaded or implements a hook vmwave does not have: nothing runs until it is fixed."""

    cause = "plugin-broken"


class PluginFailed(VmwaveError):
    """A plugin's hook raised: the VM it was asked about fails with this cause."""

    cause = "plugin-failed"


class Unclaimed(Conversion):
    """The fallback's answer: no plugin knows this guest."""


class _Fallback:
    """What vmwave does when no plugin knows the guest: copy the disks as they are, and say it is a risk."""

    @hookimpl(trylast=True)
    def vmwave_conversion(self, vm: SourceVM) -> Conversion:
        return Unclaimed("copy", f"no plugin converts {vm.guest_family} guests ({vm.guest_id or 'no guest id'})")


UNKNOWN_GUEST = "no_guest_plugin"
UNKNOWN_GUEST_FIX = f"install a plugin for it or set {CONVERT_ATTRIBUTE} (copy or virt-v2v) on the VM in vCenter"


def _candidates() -> list[tuple[str, str, str, str, object]]:
    """(name, source, distribution, version, loader) of every built-in and installed plugin."""
    found = [
        (name, "built-in", "vmwave", __version__, functools.partial(importlib.import_module, module))
        for name, module in BUILTINS.items()
    ]
    for ep in entry_points(group=GROUP):
        if ep.name in BUILTINS and ep.value == BUILTINS[ep.name]:
            continue  # vmwave's own, from an older install's metadata
        dist = ep.dist
        found.append(
            (ep.name, ep.value, dist.metadata["Name"] if dist else "?", dist.version if dist else "?", ep.load)
        )
    return found


@functools.cache
def loaded(disabled: frozenset[str] = frozenset()) -> tuple[pluggy.PluginManager, tuple[PluginInfo, ...]]:
    """The manager with every plugin not ``disabled``, and what each is; broken ones are listed with the error."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    infos = []
    candidates = _candidates()
    unknown = sorted(disabled - {name for name, *_ in candidates})
    if unknown:
        known = [name for name, *_ in candidates]
        near = difflib.get_close_matches(unknown[0], known, 1)
        raise InputError(
            "VMWAVE_DISABLE_PLUGINS",
            unknown[0],
            "is not an installed plugin",
            (f"did you mean {near[0]}? " if near else "") + "plugins: " + ", ".join(sorted(known)),
        )
    for name, source, distribution, version, load in candidates:
        if name in disabled:
            infos.append(PluginInfo(name, source, distribution, version, disabled=True))
            continue
        try:
            plugin = load()
            pm.register(plugin, name)
        except Exception as exc:  # any error of a plugin's import is that plugin's, named
            infos.append(PluginInfo(name, source, distribution, version, error=f"{type(exc).__name__}: {exc}"))
            continue
        callers = pm.get_hookcallers(plugin) or []
        hooks = tuple(sorted(h.name for h in callers))
        unknown = sorted(h.name for h in callers if not h.has_spec())  # what pluggy's check_pending refuses
        infos.append(
            PluginInfo(
                name,
                source,
                distribution,
                version,
                hooks,
                error=f"implements unknown hook(s) {', '.join(unknown)}" if unknown else "",
            )
        )
    pm.register(_Fallback(), "fallback")
    return pm, tuple(infos)


def manager(disabled: frozenset[str] = frozenset()) -> pluggy.PluginManager:
    """The plugin manager; raises, naming each, when a plugin is broken."""
    pm, infos = loaded(disabled)
    broken = sorted((i for i in infos if i.error), key=lambda i: i.name)
    if broken:
        raise PluginsBroken(
            "; ".join(f"plugin {i.name} ({i.source}, {i.distribution} {i.version}): {i.error}" for i in broken),
            "fix or uninstall it, or switch it off with VMWAVE_DISABLE_PLUGINS=" + ",".join(i.name for i in broken),
        )
    return pm


def planned_tool(vm: SourceVM, disabled: frozenset[str] = frozenset()) -> str:
    """The tool a new plan records for ``vm``: its ``vmwave.convert`` attribute, else the plugins' choice."""
    wanted = vm.attributes.get(CONVERT_ATTRIBUTE, "").strip()
    if wanted:
        if wanted not in TOOLS:
            raise VmwaveError(
                f"{vm.name}: custom attribute {CONVERT_ATTRIBUTE}={wanted!r} is not one of {', '.join(TOOLS)}",
                f"set it to {' or '.join(TOOLS)} in vCenter, or clear it to let the guest-OS plugin decide",
            )
        return wanted
    return _call(disabled, "vmwave_conversion", vm=vm, config=None).tool


def conversion(vm: SourceVM, config: Settings, tool: str | None = None) -> Conversion:
    """How a migration converts ``vm``: with the plan's ``tool`` when it names one, the plugins' options for it."""
    tool = tool or planned_tool(vm, config.disable_plugins)
    decided = _call(config.disable_plugins, "vmwave_conversion", vm=vm, config=config)
    if decided.tool == tool:
        return decided
    return Conversion(tool, f"the plan says {tool}")


def concerns(vm: SourceVM, maps: Maps | None = None, disabled: frozenset[str] = frozenset()) -> list[Concern]:
    """What the plugins find about ``vm``, each a ``Concern`` (a dict is read as one, its severity checked);
    a guest no plugin knows, which the operator has not told how to move, is a critical concern."""
    found = []
    if not vm.attributes.get(CONVERT_ATTRIBUTE, "").strip() and isinstance(
        _call(disabled, "vmwave_conversion", vm=vm, config=None), Unclaimed
    ):
        found.append(
            Concern(
                UNKNOWN_GUEST,
                CRITICAL,
                f"no guest-OS plugin knows {vm.guest_id or 'its guest'} "
                f"({vm.guest_family} family): it would be copied as it is, unconverted",
                UNKNOWN_GUEST_FIX,
            )
        )
    for answer in _call(disabled, "vmwave_concerns", vm=vm, maps=maps):
        for item in answer or []:
            if isinstance(item, dict):
                if item.get("severity") not in SEVERITIES or not all(item.get(k) for k in ("id", "message", "fix")):
                    raise PluginsBroken(
                        f"a plugin's vmwave_concerns gave {item!r} for {vm.name}",
                        f"it must have id, message, fix and a severity of {', '.join(SEVERITIES)}",
                    )
                item = Concern(item["id"], item["severity"], item["message"], item["fix"])
            found.append(item)
    return found


def preparation(vm: SourceVM, disabled: frozenset[str] = frozenset()) -> list[str]:
    """What must be done on the source before cutover, as the plugins say, each step once."""
    steps = [step for answer in _call(disabled, "vmwave_preparation", vm=vm) for step in answer or []]
    return list(dict.fromkeys(str(step) for step in steps))


def for_planning(disabled: frozenset[str] = frozenset()) -> dict[str, Callable]:
    """What `make_plan` asks the plugins: each VM's tool, their concerns about it and its preparation."""
    return {
        "convert": functools.partial(planned_tool, disabled=disabled),
        "more_concerns": functools.partial(concerns, disabled=disabled),
        "prepare": functools.partial(preparation, disabled=disabled),
    }


def customizer(config: Settings) -> Customize:
    """What the builder calls on each VirtualMachine: every plugin's ``vmwave_virtual_machine``."""

    def customize(vm: SourceVM, manifest: dict, target: Target) -> None:
        _call(config.disable_plugins, "vmwave_virtual_machine", vm=vm, manifest=manifest, target=target, config=config)

    return customize


def smoke_checks(vm: SourceVM, disabled: frozenset[str] = frozenset()) -> list[dict]:
    """The plugins' smoke checks for ``vm``, each checked as a plan's are (a plugin's bad check is named)."""
    found = []
    for checks in _call(disabled, "vmwave_smoke_checks", vm=vm):
        for index, check in enumerate(checks or []):
            try:
                found.append(
                    {
                        **parse_check(Node(check, "a guest-OS plugin's smoke checks", f"[{index}]")),
                        **({"why": check["why"]} if isinstance(check, dict) and "why" in check else {}),
                    }
                )
            except InputError as exc:
                raise PluginsBroken(
                    str(exc), "fix the plugin's vmwave_smoke_checks, or switch it off with VMWAVE_DISABLE_PLUGINS"
                ) from None
    return found


def diagnose(vm: SourceVM, step: str, error: str, disabled: frozenset[str] = frozenset()) -> dict[str, str] | None:
    """A plugin's cause and fix for a failure the diagnosis table does not know, or None."""
    found = _call(disabled, "vmwave_diagnose", vm=vm, step=step, error=error)
    return found if isinstance(found, dict) and found.get("cause") and found.get("fix") else None


def _call(disabled: frozenset[str], name: str, **kwargs: Any) -> Any:
    """Call hook ``name`` through pluggy (its order, first result, wrappers and hook-call monitoring all its own); a
    plugin that raises is named with the hook, found from the traceback, never a traceback from deep inside
    pluggy."""
    caller = getattr(manager(disabled).hook, name)
    try:
        return caller(**kwargs)
    except Exception as exc:
        culprit = _raised_in(caller, exc)
        if culprit is None:  # not a plugin's code: vmwave's own error goes on as it is
            raise
        raise PluginFailed(
            f"plugin {culprit}: {name} raised {type(exc).__name__}: {exc}",
            f"fix the plugin, or switch it off with VMWAVE_DISABLE_PLUGINS={culprit}",
        ) from exc


def _raised_in(caller: Any, exc: BaseException) -> str | None:
    """The plugin whose implementation of the hook raised ``exc``: the innermost of their frames in its traceback."""
    codes = {impl.function.__code__: impl.plugin_name for impl in caller.get_hookimpls()}
    found, tb = None, exc.__traceback__
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found
