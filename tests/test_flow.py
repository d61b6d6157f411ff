"""The plan_migration flow on a real (test-harness) Prefect server against the lab vCenter."""

import pytest
import yaml

from helpers import REPO

pytestmark = pytest.mark.prefect


def test_plan_flow_writes_the_plan_and_publishes_the_summary(
    prefect_server, lab, lab_settings, tmp_path, monkeypatch, secrets_stay_secret
):
    from prefect.client.orchestration import get_client

    from vmwave_flows.plan import plan_migration

    for key, value in lab.env().items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "plan.yaml"
    summary = plan_migration(out=str(out), maps=str(REPO / "lab/estates/small.maps.yaml"))
    doc = yaml.safe_load(out.read_text())
    assert summary["vms"] == sum(len(w["vms"]) for w in doc["waves"]) == 17

    async def artifact():
        async with get_client() as client:
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["wave-plan"]))
            )
            return found[0]

    import asyncio

    table = asyncio.run(artifact())
    assert table.type == "table"
    assert "17 VMs in" in table.description
    secrets_stay_secret(lab_settings)


def test_a_bad_rules_file_fails_before_vcenter_is_asked(prefect_server, tmp_path, monkeypatch):
    from vmwave.errors import InputError
    from vmwave_flows.plan import plan_migration

    monkeypatch.setenv("VMWAVE_VCENTER_URL", "https://127.0.0.1:1/sdk")  # would fail to connect
    monkeypatch.setenv("VMWAVE_VCENTER_USER", "u")
    monkeypatch.setenv("VMWAVE_VCENTER_PASSWORD_FILE", "/dev/null")
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\ndefault: P9\n")
    with pytest.raises(InputError, match="default"):
        plan_migration(out=str(tmp_path / "plan.yaml"), rules=str(rules))


def test_password_from_a_prefect_secret_block(prefect_server, target):
    from dataclasses import replace

    from prefect.blocks.system import Secret

    from vmwave.adapters.vsphere import connect, password
    from vmwave.errors import InputError

    Secret(value=password(target)).save("lab-vcenter-password", overwrite=True)
    via_block = replace(target, password_file=None, secret_block="lab-vcenter-password")
    with connect(via_block) as si:
        assert si.content.about.apiType == "VirtualCenter"
    with pytest.raises(InputError, match="no Prefect Secret block of that name"):
        password(replace(via_block, secret_block="no-such-block"))
