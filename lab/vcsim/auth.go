// Datastore file access (/folder) asks for what vCenter asks: the user's
// password (basic auth) or a live SOAP session's cookie. govmomi's simulator
// serves /folder to anyone; a real vCenter answers 401.
package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
)

const currentTime = `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><CurrentTime xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></CurrentTime></soapenv:Body></soapenv:Envelope>`

// authenticated asks the simulator itself whether a session cookie is live:
// CurrentTime needs a session, so a dead one answers NotAuthenticated.
func (f *faults) authenticated(next http.Handler, r *http.Request) bool {
	if user, pass, ok := r.BasicAuth(); ok {
		want, _ := f.user.Password()
		return user == f.user.Username() && pass == want
	}
	cookie, err := r.Cookie("vmware_soap_session")
	if err != nil {
		return false
	}
	req := httptest.NewRequest(http.MethodPost, "/sdk", strings.NewReader(currentTime))
	req.AddCookie(cookie)
	req.Header.Set("SOAPAction", "urn:vim25/6.7")
	req.Header.Set("Content-Type", "text/xml")
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, req)
	return rec.Code == http.StatusOK && !strings.Contains(rec.Body.String(), "NotAuthenticated")
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="VMware HTTP server"`)
	http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
}

// fromLabUser lets a request to the lab's own endpoints (/lab/faults, /lab/role) through only with the lab user's
// password (basic auth); else it answers 401.
func fromLabUser(w http.ResponseWriter, r *http.Request, user *url.Userinfo) bool {
	name, pass, ok := r.BasicAuth()
	want, _ := user.Password()
	if !ok || name != user.Username() || pass != want {
		w.WriteHeader(http.StatusUnauthorized)
		return false
	}
	return true
}
