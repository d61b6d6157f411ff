"""One settings model: flags and parameters over VMWAVE_* variables over defaults; bad values named, with the fix."""

from pathlib import Path

import pytest

from vmwave.errors import InputError
from vmwave.settings import Settings, Timeouts


def test_given_values_win_over_the_environment_which_wins_over_defaults(tmp_path):
    env = {
        "VMWAVE_IN_FLIGHT": "4",
        "VMWAVE_MAPS": "/env/maps.yaml",
        "VMWAVE_TIMEOUTS": "agent=180,import=60",
        "VMWAVE_VCENTER_URL": "https://vc/sdk",
        "VMWAVE_VCENTER_USER": "u",
        "VMWAVE_VCENTER_PASSWORD_FILE": str(tmp_path / "pw"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    settings = Settings.load(env=env, maps="/flag/maps.yaml")
    assert (settings.in_flight, settings.maps, settings.per_datastore) == (4, Path("/flag/maps.yaml"), 10)
    assert settings.timeouts == Timeouts(agent=180, import_=60) and settings.timeouts.boot == 600
    assert settings.workdir == tmp_path / "cache" / "vmwave" / "work"
    assert settings.vcenter.password_file == tmp_path / "pw" and settings.vcenter.url == "https://vc/sdk"
    assert Settings.load(env=env, vcenter={"user": "other"}).vcenter.user == "other"
    assert Settings.load(env={}).vcenter is None  # asked for only by the commands that need vCenter


@pytest.mark.parametrize(
    "env,field,fix",
    [
        ({"VMWAVE_IN_FLIGHT": "lots"}, "VMWAVE_IN_FLIGHT", "a whole number of VMs"),
        ({"VMWAVE_IN_FLIGHT": "0"}, "VMWAVE_IN_FLIGHT", "at least 1"),
        ({"VMWAVE_V2V_ACCEL": "hvf"}, "VMWAVE_V2V_ACCEL", "kvm or tcg"),
        ({"VMWAVE_V2V_ACCEL": "hvf"}, "VMWAVE_V2V_ACCEL", "kvm or tcg"),
        ({"VMWAVE_TIMEOUTS": "agent=soon"}, "agent=soon", "agent=180,boot=300"),
        ({"VMWAVE_VCENTER_URL": "https://vc/sdk"}, "user", "VMWAVE_VCENTER_USER"),
        (
            {"VMWAVE_VCENTER_URL": "https://vc/sdk", "VMWAVE_VCENTER_USER": "u"},
            "password",
            "never taken on the command line",
        ),
    ],
)
def test_bad_settings_name_the_variable_and_the_fix(env, field, fix):
    with pytest.raises(InputError) as caught:
        Settings.load(env=env)
    assert caught.value.field == field and fix in str(caught.value)


def test_what_a_command_needs_is_asked_for_by_name():
    settings = Settings.load(env={})
    with pytest.raises(InputError, match="VMWAVE_VCENTER_URL"):
        settings.need_vcenter()
    with pytest.raises(InputError, match="VMWAVE_KUBECONFIG"):
        settings.need_kubeconfig()
    with pytest.raises(InputError, match="VMWAVE_MAPS"):
        settings.need_maps()


def test_the_flows_show_a_typed_form_and_take_no_secret():
    """The Prefect UI builds a run's form from these schemas; a secret is only ever named, never a parameter."""
    from prefect.utilities.callables import parameter_schema

    from vmwave_flows.plan import plan_migration
    from vmwave_flows.wave import migrate_wave, rollback_wave

    schema = parameter_schema(migrate_wave.fn).model_dump()
    props = schema["properties"]
    assert props["in_flight"]["anyOf"][0]["type"] == "integer" and props["keep_for_debug"]["type"] == "boolean"
    assert set(schema["definitions"]["Timeouts"]["properties"]) == {"shutdown", "convert", "import", "boot", "agent"}
    assert "VMWAVE_IN_FLIGHT" in props["in_flight"]["description"]
    for flow in (migrate_wave, rollback_wave, plan_migration):
        names = set(parameter_schema(flow.fn).model_dump()["properties"])
        held = {
            n for n in names if n in ("password", "token", "secret", "api_key") or n.endswith(("_password", "_token"))
        }
        assert not held, names  # a parameter may say where a secret is (password_file, secret_block), never hold it
