// Changed block tracking, which govmomi's simulator lacks (it has no QueryChangedDiskAreas).
//
// Each disk of a VM with CBT on carries a changeId, "<tracking id>/<n>", where n counts the VM's
// snapshots: the disk's backing in each snapshot's config holds the changeId of that moment, as
// vSphere's does. `vmwave lab write-disk` writes into a disk's flat file, as the running guest
// would, and appends the extent to STATE/cbt.jsonl; `vmwave lab reset-cbt` appends a reset, after
// which the disk has a new tracking id and every earlier changeId is refused (vSphere resets
// tracking on a storage vMotion or when ctkEnabled is toggled). QueryChangedDiskAreas answers the
// extents written between a changeId and a snapshot, and every allocated extent for changeId "*".
// The datastore file always holds the disk's current bytes.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type extent struct {
	File   string `json:"file"` // the disk's backing file, "[ds] vm/vm.vmdk"
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	Reset  bool   `json:"reset"`
}

type tracking struct {
	mu    sync.Mutex
	dir   string
	marks map[string][]int // disk file -> the journal's length at each snapshot (changeId n)
}

var (
	snapshotCall = regexp.MustCompile(`<CreateSnapshot_Task[ >]`)
	changedCall  = regexp.MustCompile(`<QueryChangedDiskAreas[ >]`)
	taskRef      = regexp.MustCompile(`<returnval type="Task">([^<]+)</returnval>`)
)

func (c *tracking) journal() []extent {
	var all []extent
	f, err := os.Open(filepath.Join(c.dir, "cbt.jsonl"))
	if err != nil {
		return nil
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		var e extent
		if json.Unmarshal(scanner.Bytes(), &e) == nil {
			all = append(all, e)
		}
	}
	return all
}

// trackingID is the disk's id while no reset intervened, in vSphere's changeId spelling.
func trackingID(file string, resets int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s#%d", file, resets)))
	hex := make([]string, 16)
	for i := range hex {
		hex[i] = fmt.Sprintf("%02x", sum[i])
	}
	return strings.Join(hex[:8], " ") + "-" + strings.Join(hex[8:], " ")
}

// state is the disk's journal: its extents in order and how many resets there were, up to `upto` lines.
func state(all []extent, file string, upto int) (lines []int, resets int) {
	for i, e := range all[:upto] {
		if e.File != file {
			continue
		}
		if e.Reset {
			resets++
		}
		lines = append(lines, i)
	}
	return
}

// stamp gives each disk of a new snapshot of a CBT VM its changeId; the snapshot gets its own copy of
// the devices, since the simulator shares them with the VM.
func (c *tracking) stamp(snapshotRef types.ManagedObjectReference) {
	snap, ok := simulator.Map.Get(snapshotRef).(*simulator.VirtualMachineSnapshot)
	if !ok || snap.Config.ChangeTrackingEnabled == nil || !*snap.Config.ChangeTrackingEnabled {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	all := c.journal()
	devices := make([]types.BaseVirtualDevice, len(snap.Config.Hardware.Device))
	for i, dev := range snap.Config.Hardware.Device {
		devices[i] = dev
		disk, isDisk := dev.(*types.VirtualDisk)
		if !isDisk {
			continue
		}
		backing, flat := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !flat {
			continue
		}
		copied, copiedBacking := *disk, *backing
		_, resets := state(all, backing.FileName, len(all))
		c.marks[backing.FileName] = append(c.marks[backing.FileName], len(all))
		copiedBacking.ChangeId = fmt.Sprintf("%s/%d", trackingID(backing.FileName, resets), len(c.marks[backing.FileName])-1)
		copied.Backing = &copiedBacking
		devices[i] = &copied
	}
	snap.Config.Hardware.Device = devices
}

// changed answers QueryChangedDiskAreas for the disk `key` of `snapshotRef` since `changeID`.
func (c *tracking) changed(snapshotRef types.ManagedObjectReference, key int32, start int64,
	changeID string) (*types.DiskChangeInfo, string) {
	snap, ok := simulator.Map.Get(snapshotRef).(*simulator.VirtualMachineSnapshot)
	if !ok {
		return nil, "snapshot"
	}
	var disk *types.VirtualDisk
	for _, dev := range snap.Config.Hardware.Device {
		if d, isDisk := dev.(*types.VirtualDisk); isDisk && d.Key == key {
			disk = d
		}
	}
	if disk == nil {
		return nil, "deviceKey"
	}
	backing, _ := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	if backing == nil || backing.ChangeId == "" {
		return nil, "changeId" // CBT was off when the snapshot was taken
	}
	info := &types.DiskChangeInfo{StartOffset: start, Length: disk.CapacityInBytes - start}
	var found []types.DiskChangeExtent
	if changeID == "*" {
		found = allocated(c.dir, backing.FileName)
	} else {
		c.mu.Lock()
		all, marks := c.journal(), c.marks[backing.FileName]
		c.mu.Unlock()
		atSnap, _ := strconv.Atoi(backing.ChangeId[strings.LastIndex(backing.ChangeId, "/")+1:])
		slash := strings.LastIndex(changeID, "/")
		since, err := strconv.Atoi(changeID[slash+1:])
		if slash < 0 || err != nil || since > atSnap || since >= len(marks) {
			return nil, "changeId"
		}
		_, resets := state(all, backing.FileName, marks[since])
		_, resetsAtSnap := state(all, backing.FileName, marks[atSnap])
		if changeID[:slash] != trackingID(backing.FileName, resets) || resets != resetsAtSnap {
			return nil, "changeId" // unknown, or tracking was reset since: a full copy is needed
		}
		lines, _ := state(all, backing.FileName, marks[atSnap])
		for _, i := range lines {
			if i >= marks[since] && !all[i].Reset {
				found = append(found, types.DiskChangeExtent{Start: all[i].Offset, Length: all[i].Length})
			}
		}
	}
	info.ChangedArea = merge(found, start)
	return info, ""
}

// merge sorts extents, joins those that touch and drops what lies before `start`.
func merge(extents []types.DiskChangeExtent, start int64) []types.DiskChangeExtent {
	sort.Slice(extents, func(i, j int) bool { return extents[i].Start < extents[j].Start })
	var out []types.DiskChangeExtent
	for _, e := range extents {
		if end := e.Start + e.Length; end <= start {
			continue
		} else if e.Start < start {
			e = types.DiskChangeExtent{Start: start, Length: end - start}
		}
		if n := len(out); n > 0 && e.Start <= out[n-1].Start+out[n-1].Length {
			if end := e.Start + e.Length; end > out[n-1].Start+out[n-1].Length {
				out[n-1].Length = end - out[n-1].Start
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

// allocated lists the data extents of the disk's flat file: what a full copy reads.
func allocated(dir, file string) []types.DiskChangeExtent {
	ds := strings.TrimPrefix(strings.SplitN(file, "]", 2)[0], "[")
	path := strings.TrimSpace(strings.SplitN(file, "]", 2)[1])
	matches, _ := filepath.Glob(filepath.Join(dir, "datastores", "*", ds, strings.TrimSuffix(path, ".vmdk")+"-flat.vmdk"))
	if len(matches) == 0 {
		return nil
	}
	f, err := os.Open(matches[0])
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []types.DiskChangeExtent
	info, _ := f.Stat()
	for offset := int64(0); offset < info.Size(); {
		data, err := f.Seek(offset, 3) // SEEK_DATA
		if err != nil {
			break
		}
		hole, err := f.Seek(data, 4) // SEEK_HOLE
		if err != nil {
			hole = info.Size()
		}
		out = append(out, types.DiskChangeExtent{Start: data, Length: hole - data})
		offset = hole
	}
	return out
}

const changedResponse = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><QueryChangedDiskAreasResponse xmlns="urn:vim25"><returnval><startOffset>%d</startOffset><length>%d</length>%s</returnval></QueryChangedDiskAreasResponse></soapenv:Body></soapenv:Envelope>`

const invalidArgument = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>A specified parameter was not correct: %s</faultstring><detail><InvalidArgumentFault xmlns="urn:vim25" xsi:type="InvalidArgument"><invalidProperty>%s</invalidProperty></InvalidArgumentFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>`

// wrap answers QueryChangedDiskAreas itself, and stamps the snapshot a CreateSnapshot_Task makes
// before its caller learns of it; every other request goes on to the simulator.
func (c *tracking) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sdk") && r.Method == http.MethodPost {
			body, _ := ioutil.ReadAll(r.Body)
			r.Body = ioutil.NopCloser(bytes.NewReader(body))
			if c.serve(next, w, r, body) {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (c *tracking) serve(next http.Handler, w http.ResponseWriter, r *http.Request, body []byte) bool {
	switch {
	case changedCall.Match(body):
		method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
		if err != nil {
			return false
		}
		req := method.Body.(*types.QueryChangedDiskAreas)
		if _, err := r.Cookie("vmware_soap_session"); err != nil || req.Snapshot == nil {
			return false // the simulator answers the session or argument fault
		}
		info, bad := c.changed(*req.Snapshot, req.DeviceKey, req.StartOffset, req.ChangeId)
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		if bad != "" {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, invalidArgument, bad, bad)
			return true
		}
		var areas bytes.Buffer
		for _, e := range info.ChangedArea {
			fmt.Fprintf(&areas, "<changedArea><start>%d</start><length>%d</length></changedArea>", e.Start, e.Length)
		}
		fmt.Fprintf(w, changedResponse, info.StartOffset, info.Length, areas.String())
		return true
	case snapshotCall.Match(body):
		recorded := httptest.NewRecorder()
		next.ServeHTTP(recorded, r)
		if m := taskRef.FindSubmatch(recorded.Body.Bytes()); m != nil {
			c.stampWhenDone(types.ManagedObjectReference{Type: "Task", Value: string(m[1])})
		}
		for k, v := range recorded.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(recorded.Code)
		_, _ = w.Write(recorded.Body.Bytes())
		return true
	}
	return false
}

// stampWhenDone waits for the snapshot task (the simulator runs it at once) and stamps its snapshot.
func (c *tracking) stampWhenDone(ref types.ManagedObjectReference) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if task, ok := simulator.Map.Get(ref).(*simulator.Task); ok {
			var info types.TaskInfo
			simulator.Map.WithLock(task, func() { info = task.Info })
			if info.State == types.TaskInfoStateSuccess {
				if snap, ok := info.Result.(types.ManagedObjectReference); ok {
					c.stamp(snap)
				}
				return
			}
			if info.State == types.TaskInfoStateError {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}
