package main

import (
	"bytes"
	"io/ioutil"
	"net/http"
	"regexp"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

var setFieldCall = regexp.MustCompile(`<SetField[ >]`)

// fieldValues makes SetField replace an entity's value for a field, as vCenter does: the simulator appends
// another value each time, so a custom attribute set twice would be listed twice.
type fieldValues struct{}

func (f *fieldValues) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/sdk" {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := ioutil.ReadAll(r.Body)
		r.Body = ioutil.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
		if !setFieldCall.Match(body) {
			return
		}
		method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
		if err != nil {
			return
		}
		req, ok := method.Body.(*types.SetField)
		if !ok {
			return
		}
		obj := simulator.Map.Get(req.Entity)
		entity, ok := obj.(mo.Entity)
		if !ok {
			return
		}
		simulator.Map.WithLock(obj, func() {
			e := entity.Entity()
			e.CustomValue = lastPerKey(e.CustomValue)
			e.Value = lastPerKey(e.Value)
		})
	})
}

// lastPerKey keeps the newest value of each field, in the order the fields were first set.
func lastPerKey(values []types.BaseCustomFieldValue) []types.BaseCustomFieldValue {
	newest := map[int32]types.BaseCustomFieldValue{}
	var order []int32
	for _, v := range values {
		key := v.GetCustomFieldValue().Key
		if _, seen := newest[key]; !seen {
			order = append(order, key)
		}
		newest[key] = v
	}
	kept := make([]types.BaseCustomFieldValue, 0, len(order))
	for _, key := range order {
		kept = append(kept, newest[key])
	}
	return kept
}
