"""Disk downloads from the lab vCenter's datastore: streamed, checked, and resumed with Range."""

import hashlib
import os
import ssl

import pytest

from vmwave.adapters.datastore import download, file_url, session_headers
from vmwave.adapters.vsphere import connect
from vmwave.errors import ConnectionFailed
from vmwave_lab.vcenter import seed_disk


@pytest.fixture(scope="module")
def disk(lab, by_name, tmp_path_factory):
    source = tmp_path_factory.mktemp("disk") / "web-01.vmdk"
    source.write_bytes(os.urandom(3 << 20) + b"\0" * (5 << 20) + os.urandom(1 << 20))
    vm = by_name["web-01"]
    seed_disk(lab, vm.datacenter, vm.disks[0].file, source)
    return vm, source


def test_a_disk_streams_to_a_file(lab, target, disk, tmp_path):
    vm, source = disk
    with connect(target) as si:
        url = file_url(lab.url, vm.datacenter, vm.disks[0].file)
        got = download(url, tmp_path / "d.vmdk", session_headers(si._stub.cookie), ssl.create_default_context(cafile=str(lab.ca_file)))
    assert got.total == got.bytes == source.stat().st_size and got.resumed_from == 0
    assert hashlib.sha256((tmp_path / "d.vmdk").read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


def test_a_cut_download_resumes_where_it_stopped(lab, target, disk, tmp_path):
    vm, source = disk
    partial = tmp_path / "d.vmdk"
    partial.write_bytes(source.read_bytes()[: 4 << 20])  # what a cut connection left behind
    seen = []
    with connect(target) as si:
        got = download(file_url(lab.url, vm.datacenter, vm.disks[0].file), partial, session_headers(si._stub.cookie),
                       ssl.create_default_context(cafile=str(lab.ca_file)), progress=lambda done, total: seen.append(done))
    assert got.resumed_from == 4 << 20 and got.bytes == source.stat().st_size - (4 << 20)
    assert partial.read_bytes() == source.read_bytes()
    assert seen[0] > 4 << 20 and seen[-1] == source.stat().st_size
    again = download(file_url(lab.url, vm.datacenter, vm.disks[0].file), partial, {},
                     ssl.create_default_context(cafile=str(lab.ca_file)))
    assert again.bytes == 0  # complete already: nothing fetched


def test_a_missing_file_is_a_clear_error(lab, tmp_path):
    with pytest.raises(ConnectionFailed, match="answered 404"):
        download(file_url(lab.url, "dc-lab", "[ds-ssd-01] nope/nope.vmdk"), tmp_path / "x", {},
                 ssl.create_default_context(cafile=str(lab.ca_file)))


def test_the_lab_seeds_estate_disks_with_real_bytes(lab, by_name, target, tmp_path):
    """`data_mb` in the estate: win-app-01's disk is a real VMDK with 16 MiB of data, as vmwave downloads it."""
    import json
    import subprocess

    vm = by_name["win-app-01"]
    with connect(target) as si:
        download(file_url(lab.url, vm.datacenter, vm.disks[0].file), tmp_path / "w.vmdk", session_headers(si._stub.cookie),
                 ssl.create_default_context(cafile=str(lab.ca_file)))
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(tmp_path / "w.vmdk")],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "vmdk" and info["virtual-size"] == vm.disks[0].capacity_bytes
    assert info["actual-size"] >= 16 << 20
