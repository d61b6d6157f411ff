"""The conversion commands: what virt-v2v is given, and that a password never reaches its argv."""

import ssl
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vmwave.adapters import conversion as tools
from vmwave.adapters.datastore import download_disk, extents, session_headers
from vmwave.adapters.vsphere import connect
from vmwave.domain.records import Disk, SourceVM

VM = SourceVM(name="db&01", moref="vm-7", instance_uuid="u-7", datacenter="dc-lab", cluster="cl prod",
              host="esx-01", firmware="efi", cpus=4, memory_mb=8192,
              disks=(Disk(1, "Hard disk 1", "[ds] db/db.vmdk", "ds", 1 << 30, "pvscsi", 0, 0),
                     Disk(2, "Hard disk 2", "[ds] db/db_1.vmdk", "ds", 1 << 30, "pvscsi", 0, 1)))


def test_the_libvirt_domain_lists_every_disk_in_order():
    domain = ET.fromstring(tools.libvirt_xml(VM, [Path("/w/disk0/db.vmdk"), Path("/w/disk1/db_1.raw")]))
    assert domain.findtext("name") == "db&01" and domain.find("os").get("firmware") == "efi"
    disks = domain.findall("devices/disk")
    assert [(d.find("source").get("file"), d.find("driver").get("type"), d.find("target").get("dev")) for d in disks] == [
        ("/w/disk0/db.vmdk", "vmdk", "sda"), ("/w/disk1/db_1.raw", "raw", "sdb")]


def test_vpx_input_reads_the_password_from_a_file_and_uses_vddk_when_configured(tmp_path):
    argv = tools.vpx_argv(VM, "https://vc.example.com/sdk", "administrator@vsphere.local", tmp_path / ".password",
                          tmp_path, tools.VddkSettings("/opt/vmware-vix-disklib-distrib", "AB:CD"))
    assert argv[:5] == ["virt-v2v", "-ic", "vpx://administrator%40vsphere.local@vc.example.com/dc-lab/cl%20prod/esx-01"
                        "?no_verify=0", "-ip", str(tmp_path / ".password")]
    assert argv[5:11] == ["-it", "vddk", "-io", "vddk-libdir=/opt/vmware-vix-disklib-distrib", "-io",
                          "vddk-thumbprint=AB:CD"]
    assert argv[11:] == ["db&01", "-o", "local", "-os", str(tmp_path), "-of", "qcow2", "-on", "guest"]
    assert "-it" not in tools.vpx_argv(VM, "https://vc.example.com/sdk", "u", tmp_path / "p", tmp_path)


def test_the_vpx_password_file_is_removed_and_the_password_never_logged(tmp_path):
    with pytest.raises(tools.ConversionFailed) as failed:  # virt-v2v cannot reach vc.invalid: it fails, we look
        tools.v2v_vpx(VM, "https://vc.invalid/sdk", "u", "s3cret-pw", tmp_path, tmp_path / "log", timeout=120)
    assert list(tmp_path.glob(".password")) == []
    assert "s3cret-pw" not in failed.value.what and "s3cret-pw" not in (tmp_path / "log").read_text()


def test_a_copy_failure_carries_the_tools_own_words(tmp_path):
    broken = tmp_path / "broken.vmdk"
    broken.write_bytes(b"KDMV" + b"\xff" * 4000)
    with pytest.raises(tools.ConversionFailed, match="qemu-img convert broken.vmdk failed") as failed:
        tools.copy(broken, tmp_path / "out.qcow2", tmp_path / "copy.log")
    assert "broken.vmdk" in failed.value.what and failed.value.fix


def test_a_descriptor_and_its_flat_extent_both_come_down(lab, lab_settings, target, tmp_path):
    """A real vCenter stores `disk.vmdk` (text) + `disk-flat.vmdk` (data): both are fetched and qemu-img reads them."""
    made = tmp_path / "made"
    made.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat",
                    str(made / "flat.vmdk"), "8M"], check=True)
    with open(made / "flat-flat.vmdk", "r+b") as data:
        data.write(b"vmwave" * 1000)
    folder = lab.datastore_root / "dc-lab" / "ds-scratch" / "flat-test"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("flat.vmdk", "flat-flat.vmdk"):
        (folder / name).write_bytes((made / name).read_bytes())
    assert extents(made / "flat.vmdk") == ["flat-flat.vmdk"]
    with connect(target) as si:
        first, transfers = download_disk(target.url, "dc-lab", "[ds-scratch] flat-test/flat.vmdk", tmp_path / "got",
                                         session_headers(si._stub.cookie),
                                         ssl.create_default_context(cafile=str(target.ca_file)))
    assert [t.total for t in transfers] == [(made / "flat.vmdk").stat().st_size, 8 << 20]
    same = subprocess.run(["qemu-img", "compare", "-f", "vmdk", "-F", "vmdk", str(first), str(made / "flat.vmdk")],
                          capture_output=True, text=True)
    assert same.returncode == 0, same.stdout + same.stderr
