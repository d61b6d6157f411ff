"""The inventory file (`vmwave inventory --out`): the records of every VM, checked when it is read back.

A saved inventory is planned later, on another machine, perhaps edited: so
it is a boundary like the plan. Each record is checked against the record
types' annotations (``vmwave.domain.records``: names bounded, counts not
negative, the values code branches on named), unknown fields are refused, and
two records with one moref are one too many.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from vmwave.domain.records import Name, SourceVM
from vmwave.domain.validate import input_errors
from vmwave.errors import InputError

RECORD = TypeAdapter(SourceVM)


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Name = Field(description="the vCenter the records were read from")
    vms: tuple[SourceVM, ...]


FIXES = {"vms": "write the inventory again with `vmwave inventory --out FILE`"}


def parse_inventory(data: Any, source: str) -> Inventory:
    """An inventory document, checked: every problem at once, each with its field and fix."""
    try:
        found = Inventory.model_validate(data)
    except ValidationError as exc:
        raise input_errors(exc, source, Inventory, FIXES) from None
    seen: dict[str, int] = {}
    for index, vm in enumerate(found.vms):
        if vm.moref in seen:
            raise InputError(
                source,
                f"vms[{index}].moref",
                f"{vm.moref} is also the moref of vms[{seen[vm.moref]}]",
                "keep one record per VM: write the inventory again with `vmwave inventory`",
            )
        seen[vm.moref] = index
    return found
