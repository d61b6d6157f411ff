"""Guest-OS plugins choose the conversion and add smoke checks; the operator's attribute beats them."""

import pytest

from vmwave import hookimpl
from vmwave.domain.records import SourceVM
from vmwave.errors import VmwaveError
from vmwave.plugins import Conversion, conversion, manager, planned_tool, smoke_checks
from vmwave.settings import Settings

CONFIG = Settings.load(env={})


def vm(family: str, **attributes: str) -> SourceVM:
    return SourceVM(name=f"{family}-vm", moref="vm-1", instance_uuid="u-1", guest_family=family, attributes=attributes)


def test_built_in_plugins_come_through_the_entry_point_group():
    names = {name for name, _ in manager().list_name_plugin()}
    assert {"linux", "windows"} <= names


def test_linux_is_converted_by_virt_v2v_and_unknown_guests_are_copied():
    assert [planned_tool(vm(family)) for family in ("linux", "windows", "other", "unknown")] == [
        "virt-v2v",
        "virt-v2v",
        "copy",
        "copy",
    ]
    assert conversion(vm("linux"), CONFIG).why.startswith("Linux guest")


def test_the_vcenter_attribute_overrides_the_plugin_and_the_plan_overrides_both():
    assert planned_tool(vm("linux", **{"vmwave.convert": "copy"})) == "copy"
    assert planned_tool(vm("other", **{"vmwave.convert": "virt-v2v"})) == "virt-v2v"
    with pytest.raises(VmwaveError, match="is not one of copy, virt-v2v") as bad:
        planned_tool(vm("linux", **{"vmwave.convert": "v2v"}))
    assert "clear it" in bad.value.fix
    assert conversion(vm("linux"), CONFIG, "copy") == Conversion("copy", "the plan says copy")
    assert conversion(vm("windows"), CONFIG, "copy").needs == ""  # a copy needs no drivers


def test_windows_needs_the_virtio_drivers():
    missing = conversion(vm("windows"), CONFIG, "virt-v2v")
    assert missing.tool == "virt-v2v" and "VirtIO drivers" in missing.needs and "VMWAVE_VIRTIO_WIN" in missing.needs
    assert "in the conversion image" in missing.needs  # where virt-v2v-in-place runs, not the worker
    iso = "/usr/share/virtio-win/virtio-win.iso"
    chosen = conversion(vm("windows"), Settings.load(env={"VMWAVE_VIRTIO_WIN": iso}), "virt-v2v")
    assert (chosen.tool, chosen.env, chosen.needs) == ("virt-v2v", {"VIRTIO_WIN": iso}, "")


def test_plugins_add_smoke_checks_by_guest_family():
    assert smoke_checks(vm("windows")) == [
        {"agent": "os", "expect": {"id": "^mswindows$"}, "why": "the guest agent reports Windows"},
        {"tcp": 3389, "why": "Remote Desktop answers"},
    ]
    assert [c.get("agent") or c.get("tcp") for c in smoke_checks(vm("linux"))] == ["os", 22]
    assert smoke_checks(vm("other")) == []


def test_a_third_party_plugin_answers_first():
    class Appliance:
        @hookimpl(tryfirst=True)
        def vmwave_conversion(self, vm):  # takes only what it needs of the spec's arguments
            return Conversion("copy", "appliance images boot on virtio") if vm.name.startswith("appl") else None

        @hookimpl
        def vmwave_smoke_checks(self, vm):
            return [{"tcp": 443}]

    plugin = Appliance()
    manager().register(plugin, "appliance")
    try:
        assert planned_tool(SourceVM(name="appl-1", moref="vm-2", instance_uuid="u-2", guest_family="linux")) == "copy"
        assert planned_tool(vm("linux")) == "virt-v2v"
        assert {"tcp": 443} in smoke_checks(vm("linux"))
    finally:
        manager().unregister(plugin)


def installed(root, name: str, module: str, source: str) -> None:
    """A distribution as pip leaves it on sys.path: the module, and dist-info with its `vmwave` entry point."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{name.replace('-', '_')}-1.2.dist-info"  # as wheels name it: the first - ends the name
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[vmwave]\n{name} = {module}\n")


def test_plugins_list_names_installed_and_broken_plugins_with_their_distribution(tmp_path):
    import os
    import subprocess
    import sys

    from helpers import VMWAVE

    installed(
        tmp_path,
        "vmwave-freebsd",
        "vmwave_freebsd",
        "from vmwave import hookimpl\n\n@hookimpl\n"
        "def vmwave_smoke_checks(vm):\n    return [{'tcp': 22}] if vm.guest_family == 'other' else []\n",
    )
    installed(
        tmp_path,
        "vmwave-typo",
        "vmwave_typo",
        "from vmwave import hookimpl\n\n@hookimpl\ndef vmwave_smoke_check(vm):\n    return []\n",
    )
    installed(tmp_path, "vmwave-crash", "vmwave_crash", "raise RuntimeError('needs a library this host lacks')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "250"}
    listed = subprocess.run([VMWAVE, "plugins", "list"], capture_output=True, text=True, env=env)
    assert listed.returncode == 1, listed.stdout + listed.stderr
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if line.count("│") > 4}
    assert "vmwave-freebsd 1.2" in rows["vmwave-freebsd"] and "vmwave_smoke_checks" in rows["vmwave-freebsd"]
    assert "ok" in rows["vmwave-freebsd"] and "built-in" in rows["linux"]
    assert "unknown hook(s) vmwave_smoke_check" in rows["vmwave-typo"]
    assert "RuntimeError: needs a library this host lacks" in rows["vmwave-crash"]
    using = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vmwave.plugins import manager\ntry:\n    manager()\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)",
        ],
        capture_output=True,
        text=True,
        env=env,
    )  # anything that asks the plugins stops, naming each broken one and the fix
    assert using.stdout.startswith("PluginsBroken plugin vmwave-crash (vmwave_crash, vmwave-crash 1.2): RuntimeError")
    assert "plugin vmwave-typo (vmwave_typo, vmwave-typo 1.2): implements unknown hook(s)" in using.stdout
    assert "VMWAVE_DISABLE_PLUGINS=vmwave-crash,vmwave-typo" in using.stdout


def test_a_disabled_plugin_is_not_asked_and_is_listed_as_disabled(tmp_path):
    import os
    import subprocess

    from helpers import VMWAVE

    config = Settings.load(env={"VMWAVE_DISABLE_PLUGINS": "windows, "})
    assert config.disable_plugins == frozenset({"windows"})
    assert conversion(vm("windows"), config, "virt-v2v").why == "the plan says virt-v2v"  # no plugin decided it
    assert smoke_checks(vm("windows"), config.disable_plugins) == []
    listed = subprocess.run(
        [VMWAVE, "plugins", "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "VMWAVE_DISABLE_PLUGINS": "windows", "COLUMNS": "200"},
    )
    assert listed.returncode == 0
    assert "disabled" in next(line for line in listed.stdout.splitlines() if "│ windows" in line)


def test_a_plugins_concerns_join_the_plan_and_a_bad_one_is_refused(tmp_path):
    from dataclasses import replace

    from helpers import estate_records
    from vmwave import hookimpl
    from vmwave.adapters.files import load_policy
    from vmwave.domain.plan import make_plan, parse_plan
    from vmwave.plugins import PluginsBroken, concerns, for_planning, manager

    class Netplan:
        @hookimpl
        def vmwave_preparation(self, vm):
            return ["back up /etc/netplan"] if vm.guest_family == "linux" else []

        @hookimpl
        def vmwave_concerns(self, vm):
            return (
                [
                    {
                        "id": "netplan-renderer",
                        "severity": "warning",
                        "message": f"{vm.name} uses netplan",
                        "fix": "set renderer: networkd",
                    }
                ]
                if vm.guest_family == "linux"
                else []
            )

    pm = manager()
    pm.register(Netplan(), "netplan-test")
    try:
        doc = make_plan(estate_records(), load_policy(), None, "estate", **for_planning())
        vms = {v["name"]: v for w in doc["waves"] for v in w["vms"]}
        assert {
            "id": "netplan-renderer",
            "severity": "warning",
            "message": "debian-12 uses netplan",
            "fix": "set renderer: networkd",
        } in vms["debian-12"]["concerns"]
        assert vms["debian-12"]["preparation"][0] == "back up /etc/netplan"  # newest plugin first, then debian's
        assert parse_plan(doc, "plan.yaml").waves[0].vms[0].preparation in ([], ["back up /etc/netplan"])
        with pytest.raises(PluginsBroken, match="severity of critical"):
            pm.unregister(name="netplan-test")
            pm.register(type("Bad", (), {"vmwave_concerns": hookimpl(lambda self, vm: [{"id": "x"}])})(), "bad-test")
            concerns(replace(vm("linux"), name="x"))
    finally:
        for name in ("netplan-test", "bad-test"):
            if pm.get_plugin(name) is not None:
                pm.unregister(name=name)


def test_a_plugin_changes_the_virtual_machine_before_kubevirts_checks():
    from helpers import REPO, planned_entry
    from vmwave import hookimpl
    from vmwave.adapters.files import load_maps
    from vmwave.domain.build import vm_objects
    from vmwave.errors import VmwaveError
    from vmwave.plugins import customizer, manager

    class Clock:
        @hookimpl
        def vmwave_virtual_machine(self, vm, manifest):
            manifest["spec"]["template"]["spec"]["domain"]["clock"] = {"utc": {}, "timer": {"hpet": {"present": False}}}

    class Broken:
        @hookimpl
        def vmwave_virtual_machine(self, manifest):
            manifest["spec"]["template"]["spec"]["domain"]["cpu"]["isolateEmulatorThread"] = True

    maps = load_maps(REPO / "lab/estates/small.maps.yaml")
    guest = vm("linux")
    entry = planned_entry(guest, target_name="guest")
    pm = manager()
    for name, plugin in (("clock-test", Clock()), ("broken-test", Broken())):
        pm.register(plugin, name)
        try:
            if name == "clock-test":
                made = vm_objects(guest, entry, "w1", maps, None, customizer(CONFIG)).virtual_machine
                assert made["spec"]["template"]["spec"]["domain"]["clock"]["timer"] == {"hpet": {"present": False}}
            else:
                with pytest.raises(VmwaveError, match="isolateEmulatorThread needs dedicatedCpuPlacement"):  # checked
                    vm_objects(guest, entry, "w1", maps, None, customizer(CONFIG))
        finally:
            pm.unregister(name=name)


def test_a_hook_that_raises_is_named_with_its_plugin_and_a_plugin_may_diagnose_a_failure():
    from vmwave import hookimpl
    from vmwave.domain.diagnosis import cause
    from vmwave.plugins import PluginFailed, diagnose, manager

    class Raises:
        @hookimpl
        def vmwave_smoke_checks(self, vm):
            raise KeyError("guest_os")

    class Knows:
        @hookimpl
        def vmwave_diagnose(self, step, error):
            return {"cause": "freebsd-ufs-dirty", "fix": "run fsck"} if "UFS" in error else None

    pm = manager()
    pm.register(Raises(), "raises-test")
    try:
        with pytest.raises(PluginFailed) as failed:
            smoke_checks(vm("linux"))
        assert str(failed.value).startswith("plugin raises-test: vmwave_smoke_checks raised KeyError: 'guest_os'.")
        assert (
            "VMWAVE_DISABLE_PLUGINS=raises-test" in str(failed.value)
            and cause(failed.value.cause).id == "plugin-failed"
        )
    finally:
        pm.unregister(name="raises-test")
    pm.register(Knows(), "knows-test")
    try:
        assert diagnose(vm("other"), "convert", "UFS superblock dirty") == {
            "cause": "freebsd-ufs-dirty",
            "fix": "run fsck",
        }
        assert diagnose(vm("other"), "convert", "something else") is None
    finally:
        pm.unregister(name="knows-test")


def test_every_hook_spec_documents_its_arguments_its_answer_and_its_version():
    import inspect

    from helpers import REPO
    from vmwave import hookspecs

    specs = [f for name, f in vars(hookspecs).items() if name.startswith("vmwave_")]
    assert {f.__name__ for f in specs} == {
        "vmwave_concerns",
        "vmwave_conversion",
        "vmwave_virtual_machine",
        "vmwave_preparation",
        "vmwave_smoke_checks",
        "vmwave_diagnose",
    }
    guide = (REPO / "docs" / "plugins.md").read_text()
    for spec in specs:
        doc = inspect.getdoc(spec)
        for argument in inspect.signature(spec).parameters:
            assert f"    {argument}:" in doc, f"{spec.__name__} does not document {argument}"
        assert "Returns:" in doc and f"Since version {hookspecs.HOOK_API_VERSION}" in doc
        assert f"`{spec.__name__}(" in guide  # the author's guide covers it
    first = {f.__name__ for f in specs if manager().hook.__dict__[f.__name__].spec.opts.get("firstresult")}
    assert first == {"vmwave_conversion", "vmwave_diagnose"}


def test_a_third_party_wrapper_wraps_every_virtual_machine_and_its_change_shows_in_manifests(tmp_path):
    """Hooks are called through pluggy: a `wrapper=True` implementation runs around the others, as pluggy says."""
    import json
    import os
    import subprocess

    import yaml

    from helpers import REPO, VMWAVE, estate_records

    installed(
        tmp_path,
        "vmwave-audit",
        "vmwave_audit",
        "from vmwave import hookimpl\n\n"
        "@hookimpl(wrapper=True)\n"
        "def vmwave_virtual_machine(vm, manifest):\n"
        "    notes = manifest['metadata'].setdefault('annotations', {})\n"
        "    notes['audit.example.com/before'] = str(len(notes))\n"
        "    result = yield  # every other plugin changes the manifest here\n"
        "    notes['audit.example.com/after'] = 'wrapped ' + vm.name\n"
        "    return result\n",
    )
    records = [r for r in estate_records() if r.guest_family == "linux" and r.disks and not r.template][:1]
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"source": "test", "vms": [r.to_dict() for r in records]}))
    maps, plan, out = REPO / "lab" / "estates" / "small.maps.yaml", tmp_path / "plan.yaml", tmp_path / "manifests"
    (tmp_path / "password").write_text("not-used\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "VMWAVE_VCENTER_URL": "https://vcenter.example/sdk",
        "VMWAVE_VCENTER_USER": "migrator",
        "VMWAVE_VCENTER_PASSWORD_FILE": str(tmp_path / "password"),
    }
    for args in (
        ["plan", "--inventory", str(inventory), "--maps", str(maps), "--out", str(plan)],
        [
            "manifests",
            "--plan",
            str(plan),
            "--wave",
            "1",
            "--maps",
            str(maps),
            "--inventory",
            str(inventory),
            "--out",
            str(out),
        ],
    ):
        done = subprocess.run([VMWAVE, *args], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    vm = yaml.safe_load(next(out.glob("virtualmachine-*.yaml")).read_text())
    assert vm["metadata"]["annotations"]["audit.example.com/after"] == f"wrapped {records[0].name}"
    assert "audit.example.com/before" in vm["metadata"]["annotations"]
