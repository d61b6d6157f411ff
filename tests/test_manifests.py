"""Maps, manifests and profiles: pure builders, checked against KubeVirt v1 / CDI v1beta1 schemas."""

import base64
import json
from dataclasses import replace

import pytest
import yaml

import schema_check
from helpers import REPO, planned_entry
from vmwave.domain.manifests import (
    LABEL_MOREF,
    LABEL_UUID,
    LABEL_WAVE,
    Target,
    datavolume,
    migration_config,
    nad,
    nads_for,
    requested_size,
    virtual_machine,
)
from vmwave.domain.build import PASSWORD_AT_RUN_TIME, SourceAccess, credentials_secret, vm_objects
from vmwave.domain.conversion_pod import conversion_objects
from vmwave.domain.maps import parse_maps
from vmwave.domain.profiles import prerequisites
from vmwave.domain.records import Disk, Nic, SourceVM
from vmwave.errors import InputError, VmwaveError

MAPS = parse_maps(yaml.safe_load((REPO / "examples/estate-2000.maps.yaml").read_text()), "maps.yaml")
needs_schemas = pytest.mark.skipif(not schema_check.available(), reason="../shared/schemas is not beside the repo")


def vm(**changes) -> SourceVM:
    base = SourceVM(
        name="DB_Prod.01",
        moref="vm-42",
        datacenter="dc-east",
        instance_uuid="5029a1b2-0000-4000-8000-000000000042",
        bios_uuid="4229a1b2-0000-4000-8000-000000000042",
        guest_id="rhel8_64Guest",
        guest_family="linux",
        cpus=8,
        memory_mb=30000,
        power_state="poweredOn",
        tools="running",
        disks=(
            Disk(1, "Hard disk 1", "[ds-ssd-01] db/db.vmdk", "ds-ssd-01", 100 * 1024**3, "pvscsi", 0, 0),
            Disk(2, "Hard disk 2", "[ds-ssd-01] db/db_1.vmdk", "ds-ssd-01", 500 * 1024**3, "pvscsi", 1, 0),
        ),
        nics=(
            Nic(3, "Network adapter 1", "00:50:56:aa:bb:01", "vmxnet3", "pg-vlan200", 200, True),
            Nic(4, "Network adapter 2", "00:50:56:aa:bb:02", "e1000e", "VM Network", 0, False),
        ),
    )
    return replace(base, **changes)


@needs_schemas
@pytest.mark.parametrize(
    "firmware,secure_boot,profile",
    [
        ("bios", False, "standard"),
        ("efi", False, "standard"),
        ("efi", True, "standard"),
        ("bios", False, "latency-sensitive"),
        ("efi", True, "latency-sensitive"),
    ],
)
def test_virtual_machine_fits_the_kubevirt_schema(firmware, secure_boot, profile):
    manifest = virtual_machine(
        vm(firmware=firmware, secure_boot=secure_boot), MAPS, "w001", Target("db-prod-01", profile)
    )
    assert schema_check.problems(manifest) == []
    domain = manifest["spec"]["template"]["spec"]["domain"]
    boot = domain["firmware"]["bootloader"]
    assert ("efi" in boot) == (firmware == "efi")
    if secure_boot:
        assert boot["efi"]["secureBoot"] is True and domain["features"]["smm"]["enabled"] is True
    assert domain["firmware"]["uuid"] == "4229a1b2-0000-4000-8000-000000000042"


def test_identity_macs_networks_and_labels():
    manifest = virtual_machine(vm(), MAPS, "w007")
    assert manifest["metadata"]["name"] == "db-prod-01"
    assert manifest["metadata"]["labels"][LABEL_UUID] == "5029a1b2-0000-4000-8000-000000000042"
    assert manifest["metadata"]["labels"][LABEL_MOREF] == "vm-42"
    assert manifest["metadata"]["labels"][LABEL_WAVE] == "w007"
    spec = manifest["spec"]["template"]["spec"]
    assert [(i["macAddress"], "bridge" in i, "masquerade" in i) for i in spec["domain"]["devices"]["interfaces"]] == [
        ("00:50:56:aa:bb:01", True, False),
        ("00:50:56:aa:bb:02", False, True),
    ]
    assert spec["networks"] == [
        {"name": "nic0", "multus": {"networkName": "vmwave/vlan200"}},
        {"name": "nic1", "pod": {}},
    ]
    assert [v["dataVolume"]["name"] for v in spec["volumes"]] == ["db-prod-01-disk0", "db-prod-01-disk1"]
    assert manifest["spec"]["runStrategy"] == "Always"
    assert (
        virtual_machine(vm(power_state="poweredOff"), MAPS, "w1")["spec"]["runStrategy"] == "Always"
    )  # booted to verify
    named = virtual_machine(vm(), MAPS, "w007", Target("orders-db"))
    assert (
        named["metadata"]["name"] == "orders-db"
        and named["spec"]["template"]["metadata"]["labels"]["kubevirt.io/domain"] == "orders-db"
    )
    assert [v["dataVolume"]["name"] for v in named["spec"]["template"]["spec"]["volumes"]] == [
        "orders-db-disk0",
        "orders-db-disk1",
    ]


def test_latency_sensitive_is_the_seed_database_profile():
    domain = virtual_machine(vm(), MAPS, "w1", Target("db", "latency-sensitive"))["spec"]["template"]["spec"]["domain"]
    assert domain["cpu"] == {
        "cores": 8,
        "sockets": 1,
        "threads": 1,
        "dedicatedCpuPlacement": True,
        "isolateEmulatorThread": True,
        "model": "host-passthrough",
        "numa": {"guestMappingPassthrough": {}},
    }
    assert domain["memory"] == {"guest": "30Gi", "hugepages": {"pageSize": "1Gi"}}  # 30000Mi rounded up to pages
    assert domain["resources"]["requests"] == domain["resources"]["limits"] == {"cpu": "8", "memory": "30Gi"}
    assert all(
        d["io"] == "native" and d["cache"] == "none" and d["dedicatedIOThread"] for d in domain["devices"]["disks"]
    )


def test_shared_disks_are_shareable_without_cache():
    shared = vm(disks=(replace(vm().disks[0], sharing="multiwriter"),))
    disk = virtual_machine(shared, MAPS, "w1")["spec"]["template"]["spec"]["domain"]["devices"]["disks"][0]
    assert disk["shareable"] is True and disk["cache"] == "none"


def test_a_shared_disk_is_one_datavolume_for_every_vm_that_has_it():
    quorum = replace(vm().disks[1], sharing="multiwriter", file="[ds-ssd-01] shared/quorum.vmdk")
    first, second = vm(disks=(vm().disks[0], quorum)), vm(name="db-02", moref="vm-43", disks=(vm().disks[0], quorum))
    made = [datavolume(v, 1, MAPS, "w1", {"blank": {}}) for v in (first, second)]
    assert made[0] == made[1]  # the same object, whichever VM renders it
    assert made[0]["metadata"]["name"].startswith("shared-quorum-") and LABEL_UUID not in made[0]["metadata"]["labels"]
    assert made[0]["spec"]["storage"]["accessModes"] == ["ReadWriteMany"]
    attached = {
        v["dataVolume"]["name"] for v in virtual_machine(second, MAPS, "w1")["spec"]["template"]["spec"]["volumes"]
    }
    assert made[0]["metadata"]["name"] in attached
    filesystem = replace(MAPS, storage=tuple(replace(m, volume_mode="Filesystem") for m in MAPS.storage))
    with pytest.raises(VmwaveError, match="needs a ReadWriteMany volume in Block mode") as refused:
        datavolume(first, 1, filesystem, "w1", {"blank": {}})
    assert "volume_mode: Block" in refused.value.fix


@needs_schemas
def test_disks_keep_their_serials_and_boot_order():
    """Each disk keeps its identity (the serial a guest with disk.EnableUUID saw), in source order, booting from the
    disk vCenter booted it from."""
    disks = (
        replace(vm().disks[0], uuid="6000C291-aaaa-bbbb-cccc-000000000001"),
        replace(vm().disks[1], uuid="6000C292-aaaa-bbbb-cccc-000000000002"),
    )
    seen = vm(disks=disks, extra_config={"disk.EnableUUID": "TRUE"}, boot_order=(2, 1))
    manifest = virtual_machine(seen, MAPS, "w1")
    rendered = manifest["spec"]["template"]["spec"]["domain"]["devices"]["disks"]
    assert [d.get("serial") for d in rendered] == [
        "6000c291aaaabbbbcccc000000000001",
        "6000c292aaaabbbbcccc000000000002",
    ]
    assert [d.get("bootOrder") for d in rendered] == [2, 1]
    assert schema_check.problems(manifest) == []
    unknown = virtual_machine(replace(seen, disks=vm().disks, boot_order=()), MAPS, "w1")
    rendered = unknown["spec"]["template"]["spec"]["domain"]["devices"]["disks"]
    assert [d.get("serial") for d in rendered] == [None, None]  # vCenter reported no UUID: none is invented
    assert [d.get("bootOrder") for d in rendered] == [1, None]


@needs_schemas
def test_every_vm_of_the_estate_carries_its_disks_serials_and_validates(estate):
    maps = parse_maps(yaml.safe_load((REPO / "lab/estates/small.maps.yaml").read_text()), "maps.yaml")
    rendered = 0
    for source in estate:
        if source.template or not source.disks:
            continue
        try:
            manifest = virtual_machine(source, maps, "w1")
        except VmwaveError:  # a VM the maps cannot place (an unmapped network): its concern says so
            continue
        disks = manifest["spec"]["template"]["spec"]["domain"]["devices"]["disks"]
        assert [d["serial"] for d in disks] == [d.uuid.replace("-", "").lower() for d in source.disks], source.name
        assert schema_check.problems(manifest) == [], source.name
        rendered += 1
    assert rendered >= 10


@pytest.mark.parametrize(
    "change,problem",
    [
        (lambda d: d["cpu"].update(dedicatedCpuPlacement=True), "Guaranteed resources"),
        (lambda d: d["cpu"].update(isolateEmulatorThread=True), "isolateEmulatorThread needs dedicatedCpuPlacement"),
        (lambda d: d["cpu"].update(numa={"guestMappingPassthrough": {}}), "NUMA guestMappingPassthrough"),
        (lambda d: d["memory"].update(guest="1500Mi", hugepages={"pageSize": "1Gi"}), "not a multiple"),
        (lambda d: d.update(firmware={"bootloader": {"efi": {"secureBoot": True}}}), "SMM"),
        (lambda d: d["devices"]["disks"][0].update(io="native"), "io native needs cache none"),
    ],
)
def test_prerequisites_kubevirt_enforces(change, problem):
    manifest = virtual_machine(vm(), MAPS, "w1")
    change(manifest["spec"]["template"]["spec"]["domain"])
    assert any(problem in p for p in prerequisites(manifest))


def test_two_nics_on_the_pod_network_are_refused_before_anything_is_made():
    pod_twice = vm(nics=(vm().nics[1], replace(vm().nics[1], key=5, mac="00:50:56:aa:bb:03")))
    with pytest.raises(VmwaveError, match="only one interface can use the pod network"):
        virtual_machine(pod_twice, MAPS, "w1")


@needs_schemas
def test_datavolume_fits_the_cdi_schema_and_sizes_include_overhead():
    dv = datavolume(vm(), 1, MAPS, "w1", {"http": {"url": "https://vcenter/folder/x-flat.vmdk", "secretRef": "t"}})
    assert schema_check.problems(dv) == []
    assert dv["spec"]["storage"] == {
        "accessModes": ["ReadWriteMany"],
        "volumeMode": "Block",
        "storageClassName": "rook-ceph-block-vm",
        "resources": {"requests": {"storage": "512000Mi"}},
    }
    disk = vm().disks[0]
    assert requested_size(disk, "Filesystem") == "108360Mi"  # 100 GiB / (1 - 5.5%), rounded up
    assert requested_size(disk, "Block") == "102400Mi"


def test_nads_are_the_seeds_ovn_localnet_and_made_once():
    found = nads_for([vm(), vm(name="other", moref="vm-43")], MAPS)
    assert len(found) == 1
    config = json.loads(found[0]["spec"]["config"])
    assert config == {
        "cniVersion": "0.3.1",
        "name": "vlan200",
        "type": "ovn-k8s-cni-overlay",
        "topology": "localnet",
        "netAttachDefName": "vmwave/vlan200",
        "mtu": 9000,
        "vlanID": 200,
        "subnets": "10.200.0.0/16",
    }
    bridge = parse_maps(
        {
            "version": 1,
            "network": [
                {"vlan": 100, "network": "ns/br100", "create": {"type": "bridge", "bridge": "br-vm", "mtu": 9000}}
            ],
        },
        "m",
    )
    assert json.loads(nad(bridge.network[0])["spec"]["config"])["type"] == "bridge"


@needs_schemas
def test_migration_config_fits_the_kubevirt_cr():
    patch = migration_config()
    cr = {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt"}, **patch}
    assert schema_check.problems(cr) == []
    assert patch["spec"]["configuration"]["migrations"]["parallelMigrationsPerCluster"] == 10


def test_unmapped_storage_is_a_clear_error():
    maps = parse_maps({"version": 1, "storage": [{"datastore": "ds-other", "storage_class": "x"}]}, "m")
    with pytest.raises(VmwaveError, match="datastore ds-ssd-01 of Hard disk 1 has no storage mapping"):
        datavolume(vm(), 0, maps, "w1", {"blank": {}})


@pytest.mark.parametrize(
    "data,field,fix",
    [
        ({"version": 1, "namespace": "Bad_NS"}, "namespace", "lower case"),
        (
            {"version": 1, "storage": [{"datastore": "a", "storage_class": "b", "volume_mode": "Raw"}]},
            "storage[0].volume_mode",
            "use one of",
        ),
        (
            {"version": 1, "storage": [{"datastore": "a", "storage_class": "b", "access_modes": ["RWX"]}]},
            "storage[0].access_modes[0]",
            "ReadWriteMany",
        ),
        (
            {"version": 1, "network": [{"portgroup": "a", "vlan": 1, "network": "pod"}]},
            "network[0].portgroup",
            "exactly one",
        ),
        ({"version": 1, "network": [{"vlan": 1, "network": "vlan1"}]}, "network[0].network", "namespace/name"),
        (
            {"version": 1, "network": [{"vlan": 1, "network": "pod", "create": {"type": "bridge", "bridge": "br"}}]},
            "network[0].create",
            "remove",
        ),
        (
            {"version": 1, "network": [{"vlan": 1, "network": "a/b", "create": {"type": "bridge"}}]},
            "network[0].create.bridge",
            "br-vm",
        ),
        (
            {
                "version": 1,
                "network": [{"vlan": 1, "network": "a/b", "create": {"type": "ovn-localnet", "mtu": 20000}}],
            },
            "network[0].create.mtu",
            "9000",
        ),
        ({"version": 1, "images": {"linux": "quay.io/x"}}, "images.linux", "docker://"),
    ],
)
def test_map_errors_name_the_field_and_the_fix(data, field, fix):
    with pytest.raises(InputError) as caught:
        parse_maps(data, "maps.yaml")
    assert caught.value.field == field and fix in str(caught.value)


def entry(**changes):
    return planned_entry(vm(), target_name="orders-db", **changes)


HTTPS = SourceAccess("https://vcenter.example.com/sdk", "svc-migrate@vsphere.local", "-----BEGIN CERTIFICATE-----")
VDDK = replace(HTTPS, vddk_image="quay.io/example/vddk:8.0.3", thumbprint="AA:BB")


@needs_schemas
def test_without_vddk_each_disk_streams_from_the_datastore_over_https():
    made = vm_objects(vm(), entry(), "w007", MAPS, HTTPS)
    assert [o["kind"] for o in made.all()] == [
        "Namespace",
        "NetworkAttachmentDefinition",
        "ConfigMap",
        "Secret",
        "DataVolume",
        "DataVolume",
        "VirtualMachine",
    ]
    dv = made.datavolumes[1]
    assert dv["metadata"]["name"] == "orders-db-disk1" and schema_check.problems(dv) == []
    assert dv["spec"]["source"] == {
        "http": {  # the flat extent: raw bytes, streamed into the PVC without a scratch copy
            "url": "https://vcenter.example.com/folder/db/db_1-flat.vmdk?dcPath=dc-east&dsName=ds-ssd-01",
            "secretRef": "vmwave-vcenter-w007",
            "certConfigMap": "vmwave-vcenter-ca",
        }
    }
    [secret] = made.secrets
    assert secret["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "vmwave", LABEL_WAVE: "w007"}
    assert base64.b64decode(secret["data"]["secretKey"]).decode() == PASSWORD_AT_RUN_TIME  # the run puts it in
    assert base64.b64decode(secret["data"]["accessKeyId"]).decode() == "svc-migrate@vsphere.local"
    assert made.config_maps[0]["data"] == {"ca.pem": "-----BEGIN CERTIFICATE-----"}
    assert made.virtual_machine["metadata"]["name"] == "orders-db"
    latency = vm_objects(vm(), entry(profile="latency-sensitive"), "w007", MAPS, HTTPS).virtual_machine
    assert latency["spec"]["template"]["spec"]["domain"]["cpu"]["dedicatedCpuPlacement"] is True


@needs_schemas
def test_with_a_vddk_image_each_disk_is_read_through_vddk_as_forklift_does():
    made = vm_objects(vm(), entry(), "w007", MAPS, VDDK)
    dv = made.datavolumes[0]
    assert schema_check.problems(dv) == []
    assert dv["spec"]["source"] == {
        "vddk": {
            "url": "https://vcenter.example.com/sdk",
            "uuid": "4229a1b2-0000-4000-8000-000000000042",
            "backingFile": "[ds-ssd-01] db/db.vmdk",
            "thumbprint": "AA:BB",
            "secretRef": "vmwave-vcenter-w007",
            "initImageURL": "quay.io/example/vddk:8.0.3",
        }
    }
    assert made.config_maps == ()  # VDDK checks the thumbprint, not a CA
    with pytest.raises(VmwaveError, match="no BIOS UUID"):
        vm_objects(vm(bios_uuid=""), entry(), "w007", MAPS, VDDK)


def test_the_run_puts_the_password_in_the_credentials_secret():
    secret = credentials_secret("w007", "vmwave", "reader", "s3cret")
    assert base64.b64decode(secret["data"]["secretKey"]) == b"s3cret"


def test_the_conversion_pod_runs_virt_v2v_in_place_on_the_vms_volumes():
    config_map, pod = conversion_objects(
        vm(),
        "orders-db",
        "w007",
        MAPS,
        "quay.io/kubev2v/forklift-virt-v2v:v2.8",
        ("--no-trim", "all"),
        {"VIRTIO_WIN": "/usr/share/virtio-win/virtio-win.iso"},
        ["orders-db-disk0", "orders-db-disk1"],
    )
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["virt-v2v-in-place"]
    assert container["args"] == ["-i", "libvirtxml", "/mnt/v2v/input.xml", "--no-trim", "all"]
    assert {"name": "VIRTIO_WIN", "value": "/usr/share/virtio-win/virtio-win.iso"} in container["env"]
    assert [v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["spec"]["volumes"]] == [
        None,
        "orders-db-disk0",
        "orders-db-disk1",
    ]
    assert container["volumeDevices"] == [
        {"name": "disk0", "devicePath": "/dev/block0"},  # the maps' Block volumes
        {"name": "disk1", "devicePath": "/dev/block1"},
    ]
    xml = config_map["data"]["input.xml"]
    assert '<source dev="/dev/block1"/>' in xml and '<mac address="00:50:56:aa:bb:01"/>' in xml
    assert pod["metadata"]["labels"][LABEL_UUID] == vm().instance_uuid  # found and removed by a rollback
    assert pod["spec"]["restartPolicy"] == "Never"


def test_a_rebuild_reads_nothing_from_vsphere_and_needs_its_template_image():
    images = replace(MAPS, images=(("rhel8_64Guest", "docker://registry.example/rhel8:latest"),))
    made = vm_objects(vm(), entry(mode="rebuild"), "w002", images, HTTPS)
    assert (made.secrets, made.config_maps) == ((), ())
    assert [d["spec"]["source"] for d in made.datavolumes] == [
        {"registry": {"url": "docker://registry.example/rhel8:latest"}},
        {"blank": {}},
    ]
    with pytest.raises(VmwaveError, match="maps name no image for rhel8_64Guest"):
        vm_objects(vm(), entry(mode="rebuild"), "w002", MAPS, None)
    with pytest.raises(VmwaveError, match="no vCenter to read its disks from"):
        vm_objects(vm(), entry(), "w002", MAPS, None)


@pytest.mark.parametrize(
    "message,expected",
    [
        (
            "Unable to connect to http data source: expected status code 200, got 401. Status: 401 Unauthorized",
            "source-auth-failed",
        ),
        (
            "Unable to connect to vddk data source: Cannot complete login due to an incorrect user name or password",
            "source-auth-failed",
        ),
        (
            "Unable to connect to vddk data source: the thumbprint 'AA' does not match the server's certificate (BB)",
            "source-auth-failed",
        ),
        (
            "Unable to connect to http data source: expected status code 200, got 404. Status: 404 Not Found",
            "source-disk-missing",
        ),
        ("disk [ds] a/a.vmdk is not a disk of VM a (it has [ds] a/b.vmdk)", "source-disk-missing"),
        ("Unable to connect to http data source: Remote end closed connection without response", "vcenter-unreachable"),
        ("Unable to connect to vddk data source: Connection refused", "vcenter-unreachable"),
        (
            "Unable to process data: Virtual image size 2 is larger than the reported available storage 1.",
            "cdi-import-failed",
        ),
    ],
)
def test_a_failed_import_is_diagnosed_from_cdis_message(message, expected):
    from vmwave.domain.diagnosis import CAUSES, import_cause

    assert import_cause(message) == expected and expected in CAUSES


def test_the_data_file_url_names_the_flat_extent_on_vcenters_file_access():
    from vmwave.domain.datastore_paths import data_file, folder_url

    assert data_file("[ds 1] my vm/my vm_1.vmdk") == "[ds 1] my vm/my vm_1-flat.vmdk"
    assert (
        folder_url("https://vc.example:8443/sdk", "dc/east", "[ds 1] my vm/my vm_1-flat.vmdk")
        == "https://vc.example:8443/folder/my%20vm/my%20vm_1-flat.vmdk?dcPath=dc/east&dsName=ds%201"
    )
    with pytest.raises(InputError, match="is not '\\[datastore\\] path'"):
        folder_url("https://vc", "dc", "no-brackets.vmdk")


def test_a_wave_starts_its_largest_disks_first():
    from types import SimpleNamespace

    from vmwave_tasks.dispatch import largest_first

    def job(name: str, *sizes: int):
        return SimpleNamespace(vm=vm(name=name, disks=tuple(replace(vm().disks[0], capacity_bytes=s) for s in sizes)))

    jobs = [job("small", 1 << 30), job("big", 100 << 30, 400 << 30), job("mid-b", 50 << 30), job("mid-a", 50 << 30)]
    assert [j.vm.name for j in largest_first(jobs)] == ["big", "mid-a", "mid-b", "small"]
