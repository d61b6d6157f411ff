// Faults the tests inject into the lab vCenter, armed with POST /lab/faults
// (basic auth: the lab user and password) and each consumed once it fires:
//
//	{"sdk_status": [503, 503]}                     next /sdk requests answer these statuses
//	{"cut_download_after": 1048576}                next datastore download stops after N bytes
//	{"fail_task": {"moref": "vm-42", "method": "CreateSnapshot_Task", "times": 1}}
//	                                               that call returns a task that ends in error
//	{"expire_sessions": 1}                         next N SOAP calls find their session logged out
//	{"datastore_fail": {"status": 401, "times": 2}} next N datastore reads answer this status
//	                                               (0: the connection drops before any answer)
//
// A real vCenter does all of these on a bad day: a busy or restarting vpxd,
// a proxy dropping a long transfer, a task failing on the host, an idle
// session timing out.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/ioutil"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type taskFault struct {
	Moref  string `json:"moref"`
	Method string `json:"method"`
	Times  int    `json:"times"`
}

type datastoreFault struct {
	Status int `json:"status"`
	Times  int `json:"times"`
}

type faultPlan struct {
	DatastoreFail  *datastoreFault `json:"datastore_fail"`
	SDKStatus      []int           `json:"sdk_status"`
	CutAfter       int64           `json:"cut_download_after"`
	FailTask       *taskFault      `json:"fail_task"`
	ExpireSessions int             `json:"expire_sessions"`
}

type faults struct {
	mu   sync.Mutex
	plan faultPlan
	user *url.Userinfo
}

var thisRef = regexp.MustCompile(`<_this[^>]*>([^<]+)</_this>`)

func (f *faults) configure(w http.ResponseWriter, r *http.Request) {
	if !fromLabUser(w, r, f.user) {
		return
	}
	var plan faultPlan
	if err := json.NewDecoder(r.Body).Decode(&plan); err != nil {
		http.Error(w, "bad fault plan: "+err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plan.SDKStatus = append(f.plan.SDKStatus, plan.SDKStatus...)
	if plan.CutAfter > 0 {
		f.plan.CutAfter = plan.CutAfter
	}
	if plan.FailTask != nil {
		f.plan.FailTask = plan.FailTask
	}
	f.plan.ExpireSessions += plan.ExpireSessions
	if plan.DatastoreFail != nil {
		f.plan.DatastoreFail = plan.DatastoreFail
	}
	w.WriteHeader(http.StatusNoContent)
}

// take returns what fires for this request and consumes it.
func (f *faults) take(path string, get bool, body []byte, cookie bool) (status int, cut int64, task *taskFault, expire bool, drop bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case strings.HasPrefix(path, "/sdk"):
		if len(f.plan.SDKStatus) > 0 {
			status, f.plan.SDKStatus = f.plan.SDKStatus[0], f.plan.SDKStatus[1:]
			return
		}
		if t := f.plan.FailTask; t != nil && bytes.Contains(body, []byte("<"+t.Method)) {
			if m := thisRef.FindSubmatch(body); m != nil && string(m[1]) == t.Moref {
				task = &taskFault{Moref: t.Moref, Method: t.Method}
				if t.Times--; t.Times <= 0 {
					f.plan.FailTask = nil
				}
				return
			}
		}
		if cookie && f.plan.ExpireSessions > 0 {
			f.plan.ExpireSessions--
			expire = true
		}
	case strings.HasPrefix(path, "/folder/") && get: // a HEAD before the download does not count
		if d := f.plan.DatastoreFail; d != nil {
			status, drop = d.Status, d.Status == 0
			if d.Times--; d.Times <= 0 {
				f.plan.DatastoreFail = nil
			}
			return
		}
		cut, f.plan.CutAfter = f.plan.CutAfter, 0
	}
	return
}

// cutWriter lets the first `left` bytes of a response through, then fails.
type cutWriter struct {
	http.ResponseWriter
	left int64
	cut  bool
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		n, _ := c.ResponseWriter.Write(p[:c.left])
		c.left, c.cut = 0, true
		return n, errors.New("lab fault: download cut")
	}
	c.left -= int64(len(p))
	return c.ResponseWriter.Write(p)
}

const taskResponse = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><%sResponse xmlns="urn:vim25"><returnval type="Task">%s</returnval></%sResponse></soapenv:Body></soapenv:Envelope>`

// failingTask answers a task method with a real simulator task that ends in error.
func failingTask(w http.ResponseWriter, t *taskFault) {
	obj := simulator.Map.Get(types.ManagedObjectReference{Type: "VirtualMachine", Value: t.Moref})
	task := simulator.CreateTask(obj, strings.TrimSuffix(t.Method, "_Task"),
		func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
			return nil, &types.GenericVmConfigFault{Reason: "injected by the vmwave lab"}
		})
	ref := task.Run()
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	fmt.Fprintf(w, taskResponse, t.Method, ref.Value, t.Method)
}

// logout ends the request's session inside the simulator, as an idle timeout would.
func logout(next http.Handler, r *http.Request) {
	body := `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><Logout xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this></Logout></soapenv:Body></soapenv:Envelope>`
	req := httptest.NewRequest(http.MethodPost, r.URL.String(), strings.NewReader(body))
	req.Header = r.Header.Clone()
	req.Header.Set("SOAPAction", "urn:vim25/6.7")
	next.ServeHTTP(httptest.NewRecorder(), req)
}

func (f *faults) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/lab/faults" && r.Method == http.MethodPost {
			f.configure(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/folder/") && !f.authenticated(next, r) {
			unauthorized(w)
			return
		}
		var body []byte
		if strings.HasPrefix(r.URL.Path, "/sdk") && r.Method == http.MethodPost {
			body, _ = ioutil.ReadAll(r.Body)
			r.Body = ioutil.NopCloser(bytes.NewReader(body))
		}
		_, err := r.Cookie("vmware_soap_session")
		status, cut, task, expire, drop := f.take(r.URL.Path, r.Method == http.MethodGet, body, err == nil)
		switch {
		case drop:
			panic(http.ErrAbortHandler) // no answer at all, as a firewall or a dead proxy
		case status != 0:
			w.WriteHeader(status)
		case task != nil:
			failingTask(w, task)
		case cut > 0:
			cw := &cutWriter{ResponseWriter: w, left: cut}
			next.ServeHTTP(cw, r)
			if cw.cut {
				panic(http.ErrAbortHandler) // drop the connection mid-body, like a proxy timing out
			}
		default:
			if expire {
				logout(next, r)
			}
			next.ServeHTTP(w, r)
		}
	})
}
