"""SUSE Linux Enterprise and openSUSE: their kubevirt/common-instancetypes preferences."""

from __future__ import annotations

from vmwave import hookimpl
from vmwave.domain.manifests import Target
from vmwave.domain.preferences import RNG, prefer, preference_for
from vmwave.domain.records import SourceVM

PREFERENCES = ((r"^sles", "sles"), (r"^opensuse", "opensuse.leap"))


@hookimpl
def vmwave_virtual_machine(vm: SourceVM, manifest: dict, target: Target) -> None:
    name = preference_for(vm.guest_id, PREFERENCES) if vm.guest_family == "linux" else None
    if name:
        prefer(manifest, target, name, RNG)
