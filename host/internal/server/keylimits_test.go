package server

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
)

func TestAdminKeyLimitsValidation(t *testing.T) {
	c := storeServer(t, sqliteStore(t))
	tests := []struct {
		name, limits string
		ok           bool
	}{
		{"all", `{"rpm":3,"rps":1,"tpm":5000,"concurrency":2}`, true},
		{"empty object", `{}`, true},
		{"null member", `{"rpm":null}`, true},
		{"zero", `{"tpm":0}`, true},
		{"maximum", `{"tpm":1000000000}`, true},
		{"negative", `{"rpm":-1}`, false},
		{"fraction", `{"rpm":1.5}`, false},
		{"string", `{"rpm":"3"}`, false},
		{"too large", `{"tpm":1000000001}`, false},
		{"overflow", `{"tpm":99999999999999999999}`, false},
		{"unknown member", `{"rph":3}`, false},
		{"not an object", `[3]`, false},
		{"number", `3`, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(t, c, "POST", "/admin/v1/keys", "sk-admin", fmt.Sprintf(`{"name":"k%d","limits":%s}`, i, tc.limits))
			if tc.ok != (status == 201) {
				t.Fatalf("%s: %d %v", tc.limits, status, body)
			}
			if !tc.ok {
				e, _ := body["error"].(map[string]any)
				if status != 400 || e["type"] != "invalid_request_error" || e["param"] != "limits" {
					t.Fatalf("%s: %d %v", tc.limits, status, body)
				}
			}
		})
	}
}

func TestAdminKeyLimitsRoundTrip(t *testing.T) {
	c := storeServer(t, sqliteStore(t))
	// limits shows a key object's limits in the order of KeyLimits.
	limits := func(o map[string]any) string {
		b, _ := json.Marshal(o["limits"])
		var l *ratelimit.KeyLimits
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		b, _ = json.Marshal(l)
		return string(b)
	}
	status, created := do(t, c, "POST", "/admin/v1/keys", "sk-admin", `{"name":"a","limits":{"rpm":3,"concurrency":1}}`)
	if status != 201 || limits(created) != `{"rpm":3,"concurrency":1}` {
		t.Fatalf("create: %d %v", status, created)
	}
	id := created["id"].(string)
	steps := []struct{ patch, want string }{
		// Members present are set, absent ones kept.
		{`{"limits":{"rpm":100,"tpm":2000}}`, `{"rpm":100,"tpm":2000,"concurrency":1}`},
		// Other fields leave the limits alone.
		{`{"group":"g"}`, `{"rpm":100,"tpm":2000,"concurrency":1}`},
		// A null or zero member removes that limit.
		{`{"limits":{"concurrency":null,"tpm":0}}`, `{"rpm":100}`},
		// Removing the last limit leaves none.
		{`{"limits":{"rpm":0}}`, `null`},
		{`{"limits":{"rps":5}}`, `{"rps":5}`},
		// null removes every limit.
		{`{"limits":null}`, `null`},
	}
	for _, s := range steps {
		status, got := do(t, c, "PATCH", "/admin/v1/keys/"+id, "sk-admin", s.patch)
		if status != 200 || limits(got) != s.want {
			t.Fatalf("PATCH %s: %d %v, want limits %s", s.patch, status, got, s.want)
		}
		if _, got := do(t, c, "GET", "/admin/v1/keys/"+id, "sk-admin", ""); limits(got) != s.want {
			t.Fatalf("GET after PATCH %s: limits %s, want %s", s.patch, limits(got), s.want)
		}
	}
	// A refused PATCH changes nothing.
	do(t, c, "PATCH", "/admin/v1/keys/"+id, "sk-admin", `{"limits":{"rpm":7}}`)
	if status, body := do(t, c, "PATCH", "/admin/v1/keys/"+id, "sk-admin", `{"limits":{"rpm":-7}}`); status != 400 {
		t.Fatalf("negative PATCH: %d %v", status, body)
	}
	_, list := do(t, c, "GET", "/admin/v1/keys", "sk-admin", "")
	found := false
	for _, d := range list["data"].([]any) {
		o := d.(map[string]any)
		if o["id"] == id {
			found = true
			if limits(o) != `{"rpm":7}` {
				t.Fatalf("list shows limits %s, want {\"rpm\":7}", limits(o))
			}
		} else if o["limits"] != nil {
			t.Fatalf("key %v without limits lists %v", o["name"], o["limits"])
		}
	}
	if !found {
		t.Fatal("the key is not listed")
	}
}
