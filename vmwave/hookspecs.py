"""The hooks a vmwave plugin may implement: the plugin contract, one place, each hook documented.

A plugin is a module (or object) whose functions are marked with
``vmwave.hookimpl`` and named like the specs below; it is found through an
entry point of the group ``vmwave`` (``[project.entry-points.vmwave]`` in its
``pyproject.toml``), as the built-in plugins are. An implementation may take
any subset of a spec's arguments, by name. A hook either collects every
plugin's answer (a list, in registration order, newest first) or, when marked
*first result*, stops at the first plugin that answers something other than
None. No hook reads the environment: settings come in ``config``.

Hook API version 1 (``HOOK_API_VERSION``); a hook added later says since when.
Modelled on pytest's ``hookspec.py`` and datasette's ``hookspecs.py``; the author's guide is ``docs/plugins.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from vmwave.domain.conversion import Conversion  # a plugin's answer: the domain's type, offered here as before
from vmwave.domain.manifests import Target

if TYPE_CHECKING:
    from vmwave.domain.concerns import Concern
    from vmwave.domain.maps import Maps
    from vmwave.domain.records import SourceVM
    from vmwave.settings import Settings

__all__ = ["HOOK_API_VERSION", "Conversion", "Target", "hookspec"]

HOOK_API_VERSION = 1
hookspec = pluggy.HookspecMarker("vmwave")


@hookspec
def vmwave_concerns(vm: SourceVM, maps: Maps | None) -> list[Concern | dict[str, Any]] | None:
    """What can break this VM's move that vmwave's own checks do not know; shown in the plan like theirs.

    Args:
        vm: the VM as vCenter reports it (name, guest id and family, guest OS info, firmware, disks, NICs,
            custom attributes, tags).
        maps: the storage and network maps the plan is made with (the target cluster's facts, such as the
            standard profile's ``cpu_model``); None when the plan is made without them.

    Returns:
        concerns, each a ``vmwave.domain.concerns.Concern`` or a dict with ``id``, ``severity``
        (``info``, ``warning`` or ``critical``), ``message`` and ``fix``; a critical one can change the VM's
        class through the rules. Collected from every plugin. Since version 1.
    """


@hookspec(firstresult=True)
def vmwave_conversion(vm: SourceVM, config: Settings | None) -> Conversion | None:
    """How to convert this VM's guest; the first plugin that answers decides.

    Args:
        vm: the VM as vCenter reports it.
        config: the run's settings; None while a plan is made (only the tool counts then).

    Returns:
        a ``Conversion``; a plugin that misses a setting says so in ``needs`` (the wave is then refused
        before anything changes) rather than raising. None: not this plugin's guest. Since version 1.
    """


@hookspec
def vmwave_virtual_machine(vm: SourceVM, manifest: dict[str, Any], target: Target, config: Settings) -> None:
    """Change the VM's KubeVirt VirtualMachine before it is validated, written by `vmwave manifests` and applied.

    Args:
        vm: the VM as vCenter reports it.
        manifest: the ``kubevirt.io/v1`` VirtualMachine as a dict, with vmwave's hardware (disks on virtio, or
            SATA in compatibility mode; the source's firmware, Secure Boot and vTPM); change it in place.
            ``vmwave.domain.preferences.prefer`` gives it a common-instancetypes preference the way the maps say.
        target: what the plan and the maps say it becomes (``vmwave.domain.manifests.Target``: name, profile,
            convert, compatibility, whether the cluster has preferences).
        config: the run's settings.

    Returns:
        nothing: the manifest is the result. Every plugin is called. Since version 1.
    """


@hookspec
def vmwave_preparation(vm: SourceVM) -> list[str] | None:
    """What a person or automation must do on the source before cutover (e.g. install the VirtIO drivers).

    Args:
        vm: the VM as vCenter reports it.

    Returns:
        steps, each one sentence; shown in the plan and the wave report. Collected. Since version 1.
    """


@hookspec
def vmwave_smoke_checks(vm: SourceVM) -> list[dict[str, Any]] | None:
    """Checks every VM of this kind gets after boot.

    Args:
        vm: the VM as vCenter reports it.

    Returns:
        checks, each ``{"tcp": PORT}``, ``{"http": URL, "status": CODE}`` or ``{"agent": "os", "expect":
        {FIELD: REGEX}}``, with an optional ``why``. Collected. Since version 1.
    """


@hookspec(firstresult=True)
def vmwave_diagnose(vm: SourceVM, step: str, error: str) -> dict[str, str] | None:
    """A cause and fix for a failure the diagnosis table does not know; the first plugin that answers decides.

    Args:
        vm: the VM as vCenter reports it.
        step: the step that failed (``vmwave.domain.steps``).
        error: what the step reported.

    Returns:
        ``{"cause": ID, "fix": TEXT}``, or None when the plugin does not know it either. Since version 1.
    """
