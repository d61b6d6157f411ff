// vcsim-lab: govmomi's vCenter simulator seeded from a vmwave estate.
//
// The Python side validates the estate YAML and expands it into seed.json;
// this program only builds that inventory through the simulator's own API
// (in-process, so 2000 VMs take seconds), then serves it over HTTPS with a
// generated RSA-2048 CA and a real user/password check.
//
//	vcsim-lab -dir STATE_DIR
//
// reads STATE_DIR/seed.json and STATE_DIR/password, writes STATE_DIR/ca.pem
// and, once serving, STATE_DIR/vcenter.ready.json.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vapi/rest"
	vapi "github.com/vmware/govmomi/vapi/simulator"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type Portgroup struct {
	Name string `json:"name"`
	Vlan int32  `json:"vlan"`
}

type Switch struct {
	Name       string      `json:"name"`
	Portgroups []Portgroup `json:"portgroups"`
}

type Cluster struct {
	Name         string     `json:"name"`
	Hosts        []string   `json:"hosts"`
	DRS          bool       `json:"drs"`
	DPM          bool       `json:"dpm"`
	Maintenance  []string   `json:"maintenance"`  // hosts put in maintenance mode once the VMs are placed
	Disconnected []string   `json:"disconnected"` // hosts vCenter lost
	HostRules    []HostRule `json:"vm_host_rules"`
}

// HostRule is a DRS VM-host affinity rule: these VMs should run on these hosts.
type HostRule struct {
	Name  string   `json:"name"`
	VMs   []string `json:"vms"`
	Hosts []string `json:"hosts"`
}

type Datacenter struct {
	Name               string      `json:"name"`
	Folders            []string    `json:"folders"`
	Datastores         []string    `json:"datastores"`
	StandardPortgroups []Portgroup `json:"standard_portgroups"`
	Switches           []Switch    `json:"switches"`
	Clusters           []Cluster   `json:"clusters"`
}

type Controller struct {
	Type string `json:"type"`
	Bus  int32  `json:"bus"`
}

type Disk struct {
	Controller int    `json:"controller"`
	Unit       int32  `json:"unit"`
	SizeKB     int64  `json:"size_kb"`
	File       string `json:"file"`
	Create     bool   `json:"create"`
	Sharing    string `json:"sharing"`
	Mode       string `json:"mode"`
	Thin       bool   `json:"thin"`
	UUID       string `json:"uuid"` // backing.uuid, the serial a guest sees with disk.EnableUUID
}

type Nic struct {
	Type      string   `json:"type"`
	Mac       string   `json:"mac"`
	Portgroup string   `json:"portgroup"`
	IPs       []string `json:"ips"`    // the guest's addresses on this NIC, "address/prefix"
	IPOrigin  string   `json:"origin"` // how the guest got them: manual or dhcp
}

type VM struct {
	Name         string            `json:"name"`
	Datacenter   string            `json:"datacenter"`
	Folder       string            `json:"folder"`
	Cluster      string            `json:"cluster"`
	Host         string            `json:"host"`
	GuestID      string            `json:"guest_id"`
	Firmware     string            `json:"firmware"`
	SecureBoot   bool              `json:"secure_boot"`
	CPUs         int32             `json:"cpus"`
	MemoryMB     int64             `json:"memory_mb"`
	CBT          bool              `json:"cbt"`
	Controllers  []Controller      `json:"controllers"`
	Disks        []Disk            `json:"disks"`
	Nics         []Nic             `json:"nics"`
	Devices      []string          `json:"devices"`
	Power        string            `json:"power"`
	Tools        string            `json:"tools"`
	IPs          []string          `json:"ips"`
	Attributes   map[string]string `json:"attributes"`
	Snapshots    []string          `json:"snapshots"`
	Template     bool              `json:"template"`
	Tags         []string          `json:"tags"`
	ExtraConfig  map[string]string `json:"extra_config"`
	HotAdd       []string          `json:"hot_add"`
	CPUAffinity  []int32           `json:"cpu_affinity"`
	Hostname     string            `json:"hostname"`
	Consolidate  bool              `json:"consolidation_needed"`
	FT           bool              `json:"fault_tolerance"`
	GuestDisks   []GuestDisk       `json:"guest_disks"`
	Gateway      string            `json:"gateway"`
	DNS          []string          `json:"dns"`
	InstanceUUID string            `json:"instance_uuid"` // kept from a real inventory; else the simulator's own
	BiosUUID     string            `json:"bios_uuid"`
}

// GuestDisk is a file system as VMware Tools reports it.
type GuestDisk struct {
	Path       string `json:"path"`
	CapacityMB int64  `json:"capacity_mb"`
	FreeMB     int64  `json:"free_mb"`
}

type Seed struct {
	User         string       `json:"user"`
	Listen       string       `json:"listen"`
	InstanceUuid string       `json:"instance_uuid"` // this vCenter's about.instanceUuid: each lab vCenter is another one
	Attributes   []string     `json:"attributes"`
	Datacenters  []Datacenter `json:"datacenters"`
	VMs          []VM         `json:"vms"`
}

// dcState remembers what was built in one datacenter, so VMs can be placed.
type dcState struct {
	folders    *object.DatacenterFolders
	vmFolders  map[string]*object.Folder
	pools      map[string]*object.ResourcePool
	hosts      map[string]*object.HostSystem
	dvPorts    map[string]types.DistributedVirtualSwitchPortConnection
	datastores map[string]types.ManagedObjectReference
}

type builder struct {
	ctx    context.Context
	client *vim25.Client
	dir    string
	dcs    map[string]*dcState
	fields map[string]int32
	tagged map[string][]mo.Reference // "category/tag" -> VMs carrying it
	vms    map[string]types.ManagedObjectReference
	later  []placedCluster // clusters whose rules and host states wait for their VMs
}

type placedCluster struct {
	spec    Cluster
	cluster *object.ClusterComputeResource
	hosts   map[string]*object.HostSystem
}

func must(err error, what string) {
	if err != nil {
		log.Fatalf("vcsim-lab: %s: %v", what, err)
	}
}

func (b *builder) wait(task *object.Task, err error, what string) types.ManagedObjectReference {
	must(err, what)
	info, err := task.WaitForResult(b.ctx, nil)
	must(err, what)
	if ref, ok := info.Result.(types.ManagedObjectReference); ok {
		return ref
	}
	return types.ManagedObjectReference{}
}

func (b *builder) datacenter(spec Datacenter) {
	root := object.NewRootFolder(b.client)
	dc, err := root.CreateDatacenter(b.ctx, spec.Name)
	must(err, "create datacenter "+spec.Name)
	folders, err := dc.Folders(b.ctx)
	must(err, "datacenter folders")
	st := &dcState{
		folders:    folders,
		vmFolders:  map[string]*object.Folder{"": folders.VmFolder},
		pools:      map[string]*object.ResourcePool{},
		hosts:      map[string]*object.HostSystem{},
		dvPorts:    map[string]types.DistributedVirtualSwitchPortConnection{},
		datastores: map[string]types.ManagedObjectReference{},
	}
	b.dcs[spec.Name] = st

	for _, path := range spec.Folders {
		parent := ""
		for _, part := range strings.Split(path, "/") {
			key := strings.TrimPrefix(parent+"/"+part, "/")
			if _, ok := st.vmFolders[key]; !ok {
				f, err := st.vmFolders[parent].CreateFolder(b.ctx, part)
				must(err, "create folder "+key)
				st.vmFolders[key] = f
			}
			parent = key
		}
	}

	var all []*object.HostSystem
	for _, c := range spec.Clusters {
		cluster, err := folders.HostFolder.CreateCluster(b.ctx, c.Name, types.ClusterConfigSpecEx{})
		must(err, "create cluster "+c.Name)
		for _, h := range c.Hosts {
			task, err := cluster.AddHost(b.ctx, types.HostConnectSpec{HostName: h}, true, nil, nil)
			ref := b.wait(task, err, "add host "+h)
			host := object.NewHostSystem(b.client, ref)
			st.hosts[h] = host
			all = append(all, host)
		}
		pool, err := cluster.ResourcePool(b.ctx)
		must(err, "cluster pool")
		st.pools[c.Name] = pool
		sim := simulator.Map.Get(cluster.Reference()).(*simulator.ClusterComputeResource)
		simulator.Map.WithLock(sim, func() { // the simulator turns DRS on for every cluster; the estate says
			cfg := sim.ConfigurationEx.(*types.ClusterConfigInfoEx)
			cfg.DrsConfig.Enabled = types.NewBool(c.DRS)
			cfg.DpmConfigInfo = &types.ClusterDpmConfigInfo{Enabled: types.NewBool(c.DPM)}
		})
		b.later = append(b.later, placedCluster{c, cluster, st.hosts})
	}

	for i, host := range all {
		sim := simulator.Map.Get(host.Reference()).(*simulator.HostSystem)
		existing := map[string]bool{}
		for _, pg := range sim.Config.Network.Portgroup {
			existing[pg.Spec.Name] = true // every simulated host starts with "VM Network"
		}
		for _, pg := range spec.StandardPortgroups {
			if existing[pg.Name] {
				continue
			}
			pgSpec := types.HostPortGroupSpec{Name: pg.Name, VlanId: pg.Vlan, VswitchName: "vSwitch0"}
			if i == 0 { // the simulator creates the datacenter's Network once, on the first host
				ns, err := host.ConfigManager().NetworkSystem(b.ctx)
				must(err, "network system")
				must(ns.AddPortGroup(b.ctx, pgSpec), "add portgroup "+pg.Name)
			}
			// and does not record the portgroup in the host's config, as a real host does
			simulator.Map.WithLock(sim, func() {
				sim.Config.Network.Portgroup = append(sim.Config.Network.Portgroup, types.HostPortGroup{
					Key: "key-vim.host.PortGroup-" + pg.Name, Spec: pgSpec})
			})
		}
		dss, err := host.ConfigManager().DatastoreSystem(b.ctx)
		must(err, "datastore system")
		for _, name := range spec.Datastores {
			dir := filepath.Join(b.dir, "datastores", spec.Name, name)
			must(os.MkdirAll(filepath.Join(dir, "shared"), 0o755), "datastore dir") // home of multi-writer disks
			ds, err := dss.CreateLocalDatastore(b.ctx, name, dir)
			must(err, "create datastore "+name)
			st.datastores[name] = ds.Reference()
		}
	}

	for _, sw := range spec.Switches {
		var cs types.DVSCreateSpec
		cs.ConfigSpec = &types.VMwareDVSConfigSpec{}
		cs.ConfigSpec.GetDVSConfigSpec().Name = sw.Name
		task, err := folders.NetworkFolder.CreateDVS(b.ctx, cs)
		ref := b.wait(task, err, "create switch "+sw.Name)
		dvs := object.NewDistributedVirtualSwitch(b.client, ref)
		members := &types.DVSConfigSpec{}
		for _, host := range all {
			members.Host = append(members.Host, types.DistributedVirtualSwitchHostMemberConfigSpec{
				Operation: string(types.ConfigSpecOperationAdd), Host: host.Reference()})
		}
		task, err = dvs.Reconfigure(b.ctx, members)
		b.wait(task, err, "add hosts to "+sw.Name)
		var specs []types.DVPortgroupConfigSpec
		for _, pg := range sw.Portgroups {
			specs = append(specs, types.DVPortgroupConfigSpec{
				Name: pg.Name, Type: string(types.DistributedVirtualPortgroupPortgroupTypeEarlyBinding),
				DefaultPortConfig: &types.VMwareDVSPortSetting{
					Vlan: &types.VmwareDistributedVirtualSwitchVlanIdSpec{VlanId: pg.Vlan},
				},
			})
		}
		task, err = dvs.AddPortgroup(b.ctx, specs)
		b.wait(task, err, "add portgroups to "+sw.Name)
		sim := simulator.Map.Get(ref).(*simulator.DistributedVirtualSwitch)
		for _, pgRef := range sim.Portgroup {
			pg := simulator.Map.Get(pgRef).(*simulator.DistributedVirtualPortgroup)
			st.dvPorts[pg.Name] = types.DistributedVirtualSwitchPortConnection{
				SwitchUuid: sim.Uuid, PortgroupKey: pg.Key}
		}
	}
}

func controllerDevice(c Controller, key int32) types.BaseVirtualDevice {
	base := types.VirtualController{BusNumber: c.Bus, VirtualDevice: types.VirtualDevice{Key: key}}
	scsi := types.VirtualSCSIController{VirtualController: base, SharedBus: types.VirtualSCSISharingNoSharing}
	switch c.Type {
	case "pvscsi":
		return &types.ParaVirtualSCSIController{VirtualSCSIController: scsi}
	case "lsilogic":
		return &types.VirtualLsiLogicController{VirtualSCSIController: scsi}
	case "lsilogic-sas":
		return &types.VirtualLsiLogicSASController{VirtualSCSIController: scsi}
	case "buslogic":
		return &types.VirtualBusLogicController{VirtualSCSIController: scsi}
	case "sata":
		return &types.VirtualAHCIController{VirtualSATAController: types.VirtualSATAController{VirtualController: base}}
	case "nvme":
		return &types.VirtualNVMEController{VirtualController: base}
	}
	log.Fatalf("vcsim-lab: unknown controller type %q", c.Type)
	return nil
}

func nicDevice(n Nic, st *dcState, key int32) types.BaseVirtualDevice {
	card := types.VirtualEthernetCard{
		VirtualDevice: types.VirtualDevice{Key: key},
		AddressType:   string(types.VirtualEthernetCardMacTypeManual),
		MacAddress:    n.Mac,
	}
	if port, ok := st.dvPorts[n.Portgroup]; ok {
		card.Backing = &types.VirtualEthernetCardDistributedVirtualPortBackingInfo{Port: port}
	} else {
		card.Backing = &types.VirtualEthernetCardNetworkBackingInfo{
			VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: n.Portgroup}}
	}
	switch n.Type {
	case "e1000":
		return &types.VirtualE1000{VirtualEthernetCard: card}
	case "e1000e":
		return &types.VirtualE1000e{VirtualEthernetCard: card}
	case "sriov":
		return &types.VirtualSriovEthernetCard{VirtualEthernetCard: card}
	}
	return &types.VirtualVmxnet3{VirtualVmxnet: types.VirtualVmxnet{VirtualEthernetCard: card}}
}

func extraDevice(kind string, key int32) []types.BaseVirtualDevice {
	dev := types.VirtualDevice{Key: key}
	switch kind {
	case "usb":
		return []types.BaseVirtualDevice{
			&types.VirtualUSBController{VirtualController: types.VirtualController{VirtualDevice: dev}},
			&types.VirtualUSB{VirtualDevice: types.VirtualDevice{Key: key - 1,
				Backing: &types.VirtualUSBUSBBackingInfo{VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: "path:1/0/1"}}}},
		}
	case "tpm": // the simulator's API version predates VirtualTPM: clients see a VirtualDevice with this label
		dev.DeviceInfo = &types.Description{Label: "Virtual TPM", Summary: "Virtual TPM"}
		return []types.BaseVirtualDevice{&types.VirtualTPM{VirtualDevice: dev}}
	case "passthrough":
		dev.Backing = &types.VirtualPCIPassthroughDeviceBackingInfo{Id: "0000:3b:00.0", DeviceId: "1db4", SystemId: "lab", VendorId: 0x10de}
		return []types.BaseVirtualDevice{&types.VirtualPCIPassthrough{VirtualDevice: dev}}
	case "serial":
		return []types.BaseVirtualDevice{&types.VirtualSerialPort{VirtualDevice: dev}}
	case "floppy":
		return []types.BaseVirtualDevice{&types.VirtualFloppy{VirtualDevice: dev}}
	}
	log.Fatalf("vcsim-lab: unknown device kind %q", kind)
	return nil
}

func add(dev types.BaseVirtualDevice, create bool) types.BaseVirtualDeviceConfigSpec {
	spec := &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: dev}
	if create {
		spec.FileOperation = types.VirtualDeviceConfigSpecFileOperationCreate
	}
	return spec
}

func (b *builder) vm(spec VM) {
	st := b.dcs[spec.Datacenter]
	host := st.hosts[spec.Host]
	firstDS, dir := "", ""
	for _, d := range spec.Disks {
		if firstDS == "" {
			firstDS = strings.TrimPrefix(strings.SplitN(d.File, "]", 2)[0], "[")
		}
		if dir == "" && d.Create { // the VM's own directory, escaped as vCenter does (lab/estate.py folder_name)
			dir = path.Dir(strings.TrimSpace(strings.SplitN(d.File, "]", 2)[1]))
		}
	}
	if firstDS == "" {
		for name := range st.datastores {
			firstDS = name
			break
		}
	}
	cfg := types.VirtualMachineConfigSpec{
		Name:                  spec.Name,
		GuestId:               spec.GuestID,
		NumCPUs:               spec.CPUs,
		MemoryMB:              spec.MemoryMB,
		Firmware:              spec.Firmware,
		Files:                 &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s]", firstDS)},
		ChangeTrackingEnabled: types.NewBool(spec.CBT),
		InstanceUuid:          spec.InstanceUUID,
		Uuid:                  spec.BiosUUID,
	}
	if dir != "" {
		cfg.Files.VmPathName = fmt.Sprintf("[%s] %s/%s.vmx", firstDS, dir, dir)
	}
	if spec.Firmware == "efi" {
		cfg.BootOptions = &types.VirtualMachineBootOptions{EfiSecureBootEnabled: types.NewBool(spec.SecureBoot)}
	}
	for k, v := range spec.ExtraConfig {
		cfg.ExtraConfig = append(cfg.ExtraConfig, &types.OptionValue{Key: k, Value: v})
	}
	for _, kind := range spec.HotAdd {
		switch kind {
		case "cpu":
			cfg.CpuHotAddEnabled = types.NewBool(true)
		case "cpu-remove":
			cfg.CpuHotRemoveEnabled = types.NewBool(true)
		case "memory":
			cfg.MemoryHotAddEnabled = types.NewBool(true)
		}
	}
	if len(spec.CPUAffinity) > 0 {
		cfg.CpuAffinity = &types.VirtualMachineAffinityInfo{AffinitySet: spec.CPUAffinity}
	}
	key := int32(-1000)
	ctrlKeys := make([]int32, len(spec.Controllers))
	for i, c := range spec.Controllers {
		key--
		if c.Type == "ide" {
			ctrlKeys[i] = 200 + c.Bus // the simulator's default IDE controllers
			continue
		}
		ctrlKeys[i] = key
		cfg.DeviceChange = append(cfg.DeviceChange, add(controllerDevice(c, key), false))
	}
	for _, d := range spec.Disks {
		key--
		unit := d.Unit
		if d.Create { // a disk may live on another datastore than the VM's home: give it a folder there
			ds, file := strings.TrimPrefix(strings.SplitN(d.File, "]", 2)[0], "["), strings.SplitN(d.File, "] ", 2)[1]
			must(os.MkdirAll(filepath.Join(b.dir, "datastores", spec.Datacenter, ds, path.Dir(file)), 0o755), "disk folder")
		}
		backing := &types.VirtualDiskFlatVer2BackingInfo{
			DiskMode:                     d.Mode,
			ThinProvisioned:              types.NewBool(d.Thin),
			Sharing:                      d.Sharing,
			Uuid:                         d.UUID,
			VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: d.File},
		}
		disk := &types.VirtualDisk{
			CapacityInKB: d.SizeKB, CapacityInBytes: d.SizeKB * 1024,
			VirtualDevice: types.VirtualDevice{Key: key, ControllerKey: ctrlKeys[d.Controller], UnitNumber: &unit, Backing: backing},
		}
		cfg.DeviceChange = append(cfg.DeviceChange, add(disk, d.Create))
	}
	for _, n := range spec.Nics {
		key--
		cfg.DeviceChange = append(cfg.DeviceChange, add(nicDevice(n, st, key), false))
	}
	for _, kind := range spec.Devices {
		key -= 2
		for _, dev := range extraDevice(kind, key) {
			cfg.DeviceChange = append(cfg.DeviceChange, add(dev, false))
		}
	}
	task, err := st.vmFolders[spec.Folder].CreateVM(b.ctx, cfg, st.pools[spec.Cluster], host)
	ref := b.wait(task, err, "create vm "+spec.Name)
	b.vms[spec.Name] = ref
	vm := object.NewVirtualMachine(b.client, ref)
	for _, tag := range spec.Tags {
		b.tagged[tag] = append(b.tagged[tag], ref)
	}

	for name, value := range spec.Attributes {
		must(object.NewCustomFieldsManager(b.client).Set(b.ctx, ref, b.fields[name], value), "set attribute")
	}
	for _, snap := range spec.Snapshots {
		task, err := vm.CreateSnapshot(b.ctx, snap, "seeded by the vmwave lab", false, false)
		b.wait(task, err, "snapshot "+spec.Name)
	}
	if spec.Template {
		must(vm.MarkAsTemplate(b.ctx), "mark template "+spec.Name)
		return
	}
	switch spec.Power {
	case "poweredOn", "suspended":
		task, err := vm.PowerOn(b.ctx)
		b.wait(task, err, "power on "+spec.Name)
		if spec.Power == "suspended" {
			task, err = vm.Suspend(b.ctx)
			b.wait(task, err, "suspend "+spec.Name)
		}
	}
	b.guest(ref, spec)
}

// guest sets what VMware Tools would report and the runtime state vCenter derives (FT, consolidation);
// vSphere has no API to write them.
func (b *builder) guest(ref types.ManagedObjectReference, spec VM) {
	sim := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	simulator.Map.WithLock(sim, func() {
		sim.Runtime.ConsolidationNeeded = types.NewBool(spec.Consolidate) // what vCenter says of leftover delta files
		if spec.FT {
			sim.Runtime.FaultToleranceState = types.VirtualMachineFaultToleranceStateRunning
		}
		running, status := "guestToolsNotRunning", types.VirtualMachineToolsStatusToolsNotRunning
		switch {
		case spec.Tools == "running" && spec.Power == "poweredOn":
			running, status = "guestToolsRunning", types.VirtualMachineToolsStatusToolsOk
		case spec.Tools == "not_installed":
			status = types.VirtualMachineToolsStatusToolsNotInstalled
		}
		sim.Guest.ToolsRunningStatus = running
		sim.Guest.ToolsStatus = status
		sim.Guest.GuestId = spec.GuestID
		sim.Summary.Guest.ToolsRunningStatus = running
		sim.Summary.Guest.ToolsStatus = status
		if running != "guestToolsRunning" {
			return
		}
		sim.Guest.GuestState = "running"
		sim.Guest.HostName = spec.Hostname
		sim.Guest.Disk = nil
		for _, d := range spec.GuestDisks {
			sim.Guest.Disk = append(sim.Guest.Disk, types.GuestDiskInfo{
				DiskPath: d.Path, Capacity: d.CapacityMB << 20, FreeSpace: d.FreeMB << 20})
		}
		for i := range sim.Guest.Net {
			if i < len(spec.IPs) {
				sim.Guest.Net[i].IpAddress = []string{spec.IPs[i]}
			}
			if i < len(spec.Nics) && len(spec.Nics[i].IPs) > 0 {
				sim.Guest.Net[i].IpAddress, sim.Guest.Net[i].IpConfig = ipConfig(spec.Nics[i])
				if sim.Guest.IpAddress == "" {
					sim.Guest.IpAddress = sim.Guest.Net[i].IpAddress[0]
				}
			}
		}
		if len(spec.IPs) > 0 {
			sim.Guest.IpAddress = spec.IPs[0]
		}
		sim.Summary.Guest.IpAddress = sim.Guest.IpAddress
		if spec.Gateway != "" || len(spec.DNS) > 0 {
			sim.Guest.IpStack = []types.GuestStackInfo{ipStack(spec)}
		}
	})
}

// ipConfig is one NIC's addresses as VMware Tools reports them (guest.net[].ipConfig), with their origin.
func ipConfig(nic Nic) ([]string, *types.NetIpConfigInfo) {
	origin := nic.IPOrigin
	if origin == "" {
		origin = string(types.NetIpConfigInfoIpAddressOriginManual)
	}
	plain, config := []string{}, &types.NetIpConfigInfo{Dhcp: &types.NetDhcpConfigInfo{
		Ipv4: &types.NetDhcpConfigInfoDhcpOptions{Enable: origin == string(types.NetIpConfigInfoIpAddressOriginDhcp)}}}
	for _, cidr := range nic.IPs {
		address, prefix, _ := strings.Cut(cidr, "/")
		length, err := strconv.Atoi(prefix)
		must(err, "prefix of "+cidr)
		plain = append(plain, address)
		config.IpAddress = append(config.IpAddress, types.NetIpConfigInfoIpAddress{
			IpAddress: address, PrefixLength: int32(length), Origin: origin,
			State: string(types.NetIpConfigInfoIpAddressStatusPreferred)})
	}
	return plain, config
}

// ipStack is the guest's default route and DNS servers (guest.ipStack).
func ipStack(spec VM) types.GuestStackInfo {
	stack := types.GuestStackInfo{DnsConfig: &types.NetDnsConfigInfo{HostName: spec.Hostname, IpAddress: spec.DNS}}
	if spec.Gateway != "" {
		stack.IpRouteConfig = &types.NetIpRouteConfigInfo{IpRoute: []types.NetIpRouteConfigInfoIpRoute{{
			Network: "0.0.0.0", PrefixLength: 0, Gateway: types.NetIpRouteConfigInfoGateway{IpAddress: spec.Gateway, Device: "0"}}}}
	}
	return stack
}

// restAPI serves vSphere's REST API (tags) and, unlike the bare vAPI
// simulator, refuses a session for the wrong user or password.
func restAPI(listen *url.URL, settings []types.BaseOptionValue) (string, http.HandlerFunc) {
	path, handler := vapi.New(listen, settings)
	want, _ := listen.User.Password()
	return path, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/com/vmware/cis/session") && r.URL.Query().Get("~action") == "" {
			user, pass, ok := r.BasicAuth()
			if !ok || user != listen.User.Username() || pass != want {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		handler.ServeHTTP(w, r)
	}
}

// clusterStates adds the VM-host rules and puts hosts in maintenance or disconnects them, once VMs are placed.
func (b *builder) clusterStates() {
	for _, placed := range b.later {
		spec := types.ClusterConfigSpecEx{}
		for _, rule := range placed.spec.HostRules {
			vms := types.ClusterVmGroup{ClusterGroupInfo: types.ClusterGroupInfo{Name: rule.Name + "-vms"}}
			for _, name := range rule.VMs {
				vms.Vm = append(vms.Vm, b.vms[name])
			}
			hosts := types.ClusterHostGroup{ClusterGroupInfo: types.ClusterGroupInfo{Name: rule.Name + "-hosts"}}
			for _, name := range rule.Hosts {
				hosts.Host = append(hosts.Host, placed.hosts[name].Reference())
			}
			spec.GroupSpec = append(spec.GroupSpec,
				types.ClusterGroupSpec{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationAdd}, Info: &vms},
				types.ClusterGroupSpec{ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationAdd}, Info: &hosts})
			spec.RulesSpec = append(spec.RulesSpec, types.ClusterRuleSpec{
				ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationAdd},
				Info: &types.ClusterVmHostRuleInfo{
					ClusterRuleInfo: types.ClusterRuleInfo{Name: rule.Name, Enabled: types.NewBool(true)},
					VmGroupName:     vms.Name, AffineHostGroupName: hosts.Name}})
		}
		if len(spec.RulesSpec) > 0 {
			task, err := placed.cluster.Reconfigure(b.ctx, &spec, true)
			b.wait(task, err, "rules of "+placed.spec.Name)
		}
		for _, name := range placed.spec.Maintenance {
			task, err := placed.hosts[name].EnterMaintenanceMode(b.ctx, 0, false, nil)
			b.wait(task, err, "maintenance mode "+name)
		}
		for _, name := range placed.spec.Disconnected {
			sim := simulator.Map.Get(placed.hosts[name].Reference()).(*simulator.HostSystem)
			simulator.Map.WithLock(sim, func() {
				sim.Runtime.ConnectionState = types.HostSystemConnectionStateDisconnected
			})
		}
	}
}

// seedTags creates categories and tags through the REST API and attaches them.
func (b *builder) seedTags(server *simulator.Server, user *url.Userinfo) {
	if len(b.tagged) == 0 {
		return
	}
	u := *server.URL
	u.User = user
	c, err := govmomi.NewClient(b.ctx, &u, true)
	must(err, "connect for tags")
	rc := rest.NewClient(c.Client)
	must(rc.Login(b.ctx, user), "REST login")
	m := tags.NewManager(rc)
	categories := map[string]string{}
	for key, refs := range b.tagged {
		parts := strings.SplitN(key, "/", 2)
		if _, ok := categories[parts[0]]; !ok {
			id, err := m.CreateCategory(b.ctx, &tags.Category{Name: parts[0], Cardinality: "MULTIPLE",
				AssociableTypes: []string{"VirtualMachine"}})
			must(err, "create tag category "+parts[0])
			categories[parts[0]] = id
		}
		id, err := m.CreateTag(b.ctx, &tags.Tag{Name: parts[1], CategoryID: categories[parts[0]]})
		must(err, "create tag "+key)
		must(m.AttachTagToMultipleObjects(b.ctx, id, refs), "attach tag "+key)
	}
}

func writeCerts(dir string) tls.Certificate {
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	must(err, "ca key")
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vmwave lab CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	must(err, "ca cert")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(err, "server key")
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	must(err, "server cert")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	must(ioutil.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o644), "write ca.pem")
	cert, err := tls.X509KeyPair(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	must(err, "key pair")
	return cert
}

func main() {
	dir := flag.String("dir", "", "lab state directory holding seed.json and password")
	flag.Parse()
	if *dir == "" {
		log.Fatal("vcsim-lab: -dir is required")
	}
	started := time.Now()
	raw, err := ioutil.ReadFile(filepath.Join(*dir, "seed.json"))
	must(err, "read seed.json")
	var seed Seed
	must(json.Unmarshal(raw, &seed), "parse seed.json")
	password, err := ioutil.ReadFile(filepath.Join(*dir, "password"))
	must(err, "read password file")

	model := simulator.VPX()
	model.Datacenter, model.Portgroup, model.Host, model.Cluster = 0, 0, 0, 0
	model.ClusterHost, model.Datastore, model.Machine = 0, 0, 0
	must(model.Create(), "create model")
	if seed.InstanceUuid != "" { // govmomi's VPX model gives every simulator the same one
		simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content.About.InstanceUuid = seed.InstanceUuid
	}

	ctx := context.Background()
	client, err := vim25.NewClient(ctx, model.Service)
	must(err, "in-process client")
	b := &builder{ctx: ctx, client: client, dir: *dir, dcs: map[string]*dcState{}, fields: map[string]int32{},
		tagged: map[string][]mo.Reference{}, vms: map[string]types.ManagedObjectReference{}}
	for _, dc := range seed.Datacenters {
		b.datacenter(dc)
	}
	cfm := object.NewCustomFieldsManager(client)
	for _, name := range seed.Attributes {
		def, err := cfm.Add(ctx, name, "VirtualMachine", nil, nil)
		must(err, "add custom field "+name)
		b.fields[name] = def.Key
	}
	for i, vm := range seed.VMs {
		b.vm(vm)
		if (i+1)%50 == 0 || i+1 == len(seed.VMs) { // read by `vmwave lab up` for its progress bar
			progress := fmt.Sprintf("%d %d\n", i+1, len(seed.VMs))
			must(ioutil.WriteFile(filepath.Join(*dir, "progress"), []byte(progress), 0o644), "write progress")
		}
	}
	b.clusterStates()

	user := url.UserPassword(seed.User, strings.TrimRight(string(password), "\r\n"))
	model.Service.Listen = &url.URL{Host: seed.Listen, User: user}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{writeCerts(*dir)}}
	model.Service.HandleFunc(restAPI(model.Service.Listen, simulator.Map.OptionManager().Setting))
	server := model.Service.NewServer()
	injector := &faults{user: user}
	changes := &tracking{dir: *dir, marks: map[string][]int{}}
	fields := &fieldValues{}
	privileges := &role{user: user, without: map[string]bool{}}
	server.Config.Handler = injector.wrap(privileges.wrap(changes.wrap(fields.wrap(server.Config.Handler)))) // before any client but ours connects
	b.seedTags(server, user)
	u := *server.URL
	u.User = nil
	ready, _ := json.Marshal(map[string]interface{}{
		"url": u.String(), "user": seed.User, "pid": os.Getpid(), "vms": len(seed.VMs),
		"seed_seconds": time.Since(started).Seconds(),
		"objects":      len(simulator.Map.All("VirtualMachine")),
	})
	tmp := filepath.Join(*dir, "vcenter.ready.json.tmp")
	must(ioutil.WriteFile(tmp, ready, 0o644), "write ready file")
	must(os.Rename(tmp, filepath.Join(*dir, "vcenter.ready.json")), "publish ready file")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	server.Close()
}
