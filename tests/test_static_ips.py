"""Static IPs survive: what VMware Tools reports becomes virt-v2v's --mac, and a Linux guest keeps its interface names.

The estate's VMs are the lab's (tests/helpers.estate_records mirrors what the
lab vCenter reports, test_concerns compares the two): win-app-01 has one
static address with its gateway, db-01 two on one NIC and one off the
gateway's network, static-N take DHCP, debian-12 is the real guest whose
static address the e2e tier sees after boot. The pinning script runs for real
under /bin/sh against guest trees of each network stack.
"""

import subprocess
from dataclasses import replace

import pytest
import yaml

from helpers import REPO, estate_records
from vmwave.domain.concerns import assess
from vmwave.domain.conversion_pod import conversion_objects
from vmwave.domain.maps import parse_maps
from vmwave.domain.static_ips import mac_options, static_ips
from vmwave.plugins import concerns, conversion
from vmwave.settings import Settings

VMS = {vm.name: vm for vm in estate_records()}
MAPS = parse_maps(yaml.safe_load((REPO / "lab/estates/small.maps.yaml").read_text()), "maps.yaml")
CONFIG = Settings.load(env={})


def ids(vm):
    ((_, found),) = assess([vm], MAPS)
    return {c.id: c for c in found}


def test_one_manual_address_with_its_gateway_becomes_virt_v2vs_mac_option():
    win = VMS["win-app-01"]
    assert mac_options(win) == ("--mac", f"{win.nics[0].mac}:ip:10.100.0.50,10.100.0.1,24,10.100.0.2,10.100.0.3")
    assert "static_ip_not_kept" not in ids(win) and "dhcp_address" not in ids(win)


def test_what_cannot_be_carried_over_is_a_concern_naming_the_nic():
    db = VMS["db-01"]
    ((_, found),) = assess([db], MAPS)
    messages = [c.message for c in found if c.id == "static_ip_not_kept"]
    assert messages == [
        "Network adapter 1 has 2 addresses (10.200.0.10/24, 10.200.0.11/24); virt-v2v sets one per NIC",
        "Network adapter 2 (10.30.0.10/24) has no default gateway on its network; "
        "virt-v2v sets its address without the prefix length on Windows",
    ]
    assert [ip.option() for ip in static_ips(db)] == [f"{db.nics[1].mac}:ip:10.30.0.10"]  # the address, alone
    assert "dhcp_address" in ids(VMS["static-1"]) and not static_ips(VMS["static-1"])
    unknown = replace(VMS["win-app-01"], tools="not_running")
    assert "static IP is not carried over" in ids(unknown)["tools_not_running"].message


def test_windows_conversion_pod_passes_the_option_to_virt_v2v_in_place():
    win = VMS["win-app-01"]
    how = conversion(win, Settings.load(env={"VMWAVE_VIRTIO_WIN": "/usr/share/virtio-win"}))
    _, pod = conversion_objects(
        win, "win-app-01", "w1", MAPS, "img", how.options, how.env, ["win-app-01-disk0"], how.scripts
    )
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["virt-v2v-in-place"] and not how.scripts
    assert container["args"][-2:] == ["--mac", f"{win.nics[0].mac}:ip:10.100.0.50,10.100.0.1,24,10.100.0.2,10.100.0.3"]


def test_a_linux_guest_with_a_static_ip_has_its_interface_names_pinned_after_the_conversion():
    debian = VMS["debian-12"]
    how = conversion(debian, CONFIG)
    config_map, pod = conversion_objects(
        debian, "debian-12", "w1", MAPS, "img", how.options, how.env, ["debian-12-disk0"], how.scripts, how.data
    )
    container = pod["spec"]["containers"][0]
    assert container["command"][:2] == ["/bin/sh", "-ec"] and container["command"][3] == "virt-v2v-in-place"
    assert container["command"][2].splitlines() == [
        'virt-v2v-in-place "$@"',
        'guestfish --rw --format=raw -a /dev/block0 -i <<"END"',  # a Block PVC
        "upload /mnt/v2v/pin-nic-names.pairs /tmp/pin-nic-names.pairs",
        "upload /mnt/v2v/pin-nic-names.sh /tmp/pin-nic-names.sh",
        'sh "/bin/sh /tmp/pin-nic-names.sh"',
        "rm /tmp/pin-nic-names.sh",
        "rm /tmp/pin-nic-names.pairs",
        "END",
    ]
    assert "--mac" in container["args"] and "00:50:56:aa:00:20:ip:10.0.2.15,10.0.2.2,24,10.0.2.3" in container["args"]
    assert config_map["data"]["pin-nic-names.pairs"] == "00:50:56:aa:00:20 10.0.2.15\n"
    assert debian.name not in config_map["data"]["pin-nic-names.sh"]  # the script is as shipped: no data in it
    no_static = replace(debian, nics=(replace(debian.nics[0], address_origin="dhcp"),))
    assert conversion(no_static, CONFIG).scripts == {}


def test_the_debian_rename_concern_spares_the_nics_whose_names_are_pinned():
    debian = VMS["debian-12"]
    assert "interface_renamed" not in {c.id for c in concerns(debian)}
    assert "interface_renamed" in {
        c.id for c in concerns(replace(debian, nics=(replace(debian.nics[0], addresses=()),)))
    }


GUESTS = {  # one network stack per case: where its configuration is, and the name it gives the interface
    "systemd-networkd": (
        {
            "etc/systemd/network/20-wired.network": "[Match]\nName=ens192\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n"  # noqa: E501 - a file's line as written
        },
        "ens192",
    ),
    "ifupdown": (
        {
            "etc/network/interfaces": "auto lo\niface lo inet loopback\n\nauto ens192\n"
            "iface ens192 inet static\n    address 10.0.2.15\n    netmask 255.255.255.0\n"
        },
        "ens192",
    ),
    "ifupdown.d": ({"etc/network/interfaces.d/ens224": "iface ens224 inet static\n  address 10.0.2.15/24\n"}, "ens224"),
    "rhel ifcfg": (
        {"etc/sysconfig/network-scripts/ifcfg-eth0": 'DEVICE="eth0"\nBOOTPROTO=none\nIPADDR=10.0.2.15\nPREFIX=24\n'},
        "eth0",
    ),
    "suse ifcfg": ({"etc/sysconfig/network/ifcfg-eth1": "BOOTPROTO='static'\nIPADDR='10.0.2.15/24'\n"}, "eth1"),
    "networkmanager": (
        {
            "etc/NetworkManager/system-connections/wired.nmconnection": "[connection]\nid=wired\ninterface-name=ens160\n\n[ipv4]\naddress1=10.0.2.15/24,10.0.2.2\n"  # noqa: E501 - a file's line as written
            "method=manual\n"
        },
        "ens160",
    ),
    "netplan": (
        {
            "etc/netplan/50-cloud-init.yaml": "network:\n  version: 2\n  ethernets:\n    ens33:\n"
            "      addresses:\n        - 10.0.2.15/24\n      nameservers:\n        addresses: [10.0.2.3]\n"
        },
        "ens33",
    ),
    "netplan inline": (
        {"etc/netplan/01.yaml": "network:\n  ethernets:\n    eno1:\n      addresses: [10.0.2.15/24]\n"},
        "eno1",
    ),
    "another address": (
        {"etc/systemd/network/20-wired.network": "[Match]\nName=ens192\n[Network]\nAddress=10.0.2.150/24\n"},
        None,
    ),  # 10.0.2.15 is not 10.0.2.150
    "dhcp only": ({"etc/systemd/network/20-dhcp.network": "[Match]\nName=en*\n[Network]\nDHCP=yes\n"}, None),
}


@pytest.mark.parametrize("stack", sorted(GUESTS))
def test_the_pinning_script_finds_the_interface_that_holds_the_address(stack, tmp_path):
    files, name = GUESTS[stack]
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    script, how = tmp_path / "pin.sh", conversion(VMS["debian-12"], CONFIG)
    script.write_text(how.scripts["pin-nic-names.sh"])
    (tmp_path / "pin.pairs").write_text(how.data["pin-nic-names.pairs"])
    run = subprocess.run(
        ["/bin/sh", str(script)],
        env={"ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    rules = (tmp_path / "etc/udev/rules.d/70-vmwave-net.rules").read_text()
    if name:
        assert rules == f'SUBSYSTEM=="net", ACTION=="add", ATTR{{address}}=="00:50:56:aa:00:20", NAME="{name}"\n'
        assert f"keeps the interface name {name}" in run.stdout
    else:
        assert rules == "" and "no network configuration in the guest holds 10.0.2.15" in run.stdout
