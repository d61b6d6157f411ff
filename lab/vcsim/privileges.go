// The lab user's role, as a platform team would scope vmwave's vCenter account: POST /lab/role (basic auth:
// the lab user and password) with {"without": ["VirtualMachine.State.CreateSnapshot", ...]} takes those
// privileges away on every entity (an empty list gives them back). govmomi's simulator grants everything,
// so its answers are corrected here: HasUserPrivilegeOnEntities and HasPrivilegeOnEntities say not granted,
// FetchUserPrivilegeOnEntities leaves them out, and a call that needs one fails with NoPermission, as
// vCenter answers it.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync"
)

var privilegeQuery = regexp.MustCompile(`<(HasUserPrivilegeOnEntities|HasPrivilegeOnEntities|FetchUserPrivilegeOnEntities)[ >]`)
var soapMethod = regexp.MustCompile(`<soapenv:Body>\s*<([A-Za-z_]+)[ >]`)

// The privilege each guarded call needs on its object (vSphere's documented requirement).
var needs = map[string]string{
	"CreateSnapshot_Task": "VirtualMachine.State.CreateSnapshot",
	"RemoveSnapshot_Task": "VirtualMachine.State.RemoveSnapshot",
	"PowerOffVM_Task":     "VirtualMachine.Interact.PowerOff",
	"ShutdownGuest":       "VirtualMachine.Interact.PowerOff",
	"PowerOnVM_Task":      "VirtualMachine.Interact.PowerOn",
	"Rename_Task":         "VirtualMachine.Config.Rename",
	"MoveIntoFolder_Task": "VirtualMachine.Inventory.Move",
	"SetField":            "Global.SetCustomField",
}

const noPermission = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Permission to perform this operation was denied.</faultstring><detail><NoPermissionFault xmlns="urn:vim25" xsi:type="NoPermission"><object type="%s">%s</object><privilegeId>%s</privilegeId></NoPermissionFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>`

var thisTyped = regexp.MustCompile(`<_this type="([^"]+)">([^<]+)</_this>`)

type role struct {
	mu      sync.Mutex
	without map[string]bool
	user    *url.Userinfo
}

func (p *role) configure(w http.ResponseWriter, r *http.Request) {
	if !fromLabUser(w, r, p.user) {
		return
	}
	var asked struct {
		Without []string `json:"without"`
	}
	if err := json.NewDecoder(r.Body).Decode(&asked); err != nil {
		http.Error(w, "bad role: "+err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.without = map[string]bool{}
	for _, id := range asked.Without {
		p.without[id] = true
	}
	w.WriteHeader(http.StatusNoContent)
}

func (p *role) withheld() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.without))
	for id := range p.without {
		ids = append(ids, id)
	}
	return ids
}

// correct rewrites the simulator's all-granted answer to a privilege query.
func correct(answer []byte, without []string) []byte {
	for _, id := range without {
		quoted := regexp.QuoteMeta(id)
		granted := regexp.MustCompile(`(<privId>` + quoted + `</privId>\s*<isGranted>)true(</isGranted>)`)
		answer = granted.ReplaceAll(answer, []byte("${1}false${2}"))
		answer = regexp.MustCompile(`<privileges>`+quoted+`</privileges>`).ReplaceAll(answer, nil)
	}
	return answer
}

func (p *role) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/lab/role" && r.Method == http.MethodPost {
			p.configure(w, r)
			return
		}
		without := p.withheld()
		if len(without) == 0 || r.URL.Path != "/sdk" || r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := ioutil.ReadAll(r.Body)
		r.Body = ioutil.NopCloser(bytes.NewReader(body))
		if m := soapMethod.FindSubmatch(body); m != nil {
			if id, guarded := needs[string(m[1])]; guarded && p.lacks(id) {
				kind, ref := "ServiceInstance", "ServiceInstance"
				if t := thisTyped.FindSubmatch(body); t != nil {
					kind, ref = string(t[1]), string(t[2])
				}
				w.Header().Set("Content-Type", "text/xml; charset=utf-8")
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprintf(w, noPermission, kind, ref, id)
				return
			}
		}
		if !privilegeQuery.Match(body) {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		w.Write(correct(rec.Body.Bytes(), without))
	})
}

func (p *role) lacks(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.without[id]
}
