"""Planning as one call shared by the CLI and the Prefect flow: records in, plan document out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from vmwave.domain.classes import DEFAULT_RULES, Policy, parse_rules
from vmwave.domain.maps import Maps, parse_maps
from vmwave.domain.plan import plan_to_dict
from vmwave.domain.records import SourceVM
from vmwave.domain.waves import build_plan
from vmwave.files import read_yaml, write_text_atomic


def load_policy(rules: str | Path | None = None, wave_size: int | None = None,
                per_host: int | None = None) -> Policy:
    policy = parse_rules(read_yaml(rules, "rules"), str(rules)) if rules else \
        parse_rules(yaml.safe_load(DEFAULT_RULES), "built-in rules")
    policy.wave_size = wave_size or policy.wave_size
    policy.per_host = per_host or policy.per_host
    return policy


def load_maps(maps: str | Path | None) -> Maps | None:
    return parse_maps(read_yaml(maps, "maps"), str(maps)) if maps else None


def make_plan(records: Iterable[SourceVM], policy: Policy, maps: Maps | None, source: str) -> dict[str, Any]:
    return plan_to_dict(build_plan(records, policy, maps, source))


def dump_plan(doc: dict[str, Any]) -> str:
    header = "# vmwave wave plan: edit classes or move VMs between waves, then `vmwave check` it.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=120, allow_unicode=True)


def write_plan(doc: dict[str, Any], path: str | Path) -> None:
    write_text_atomic(path, dump_plan(doc))
