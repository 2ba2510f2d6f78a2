package admin

import (
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/llmproxy/llmproxy/host/internal/store"
)

// FuzzKeyBody feeds arbitrary bodies to the key decoder: it never panics,
// and whatever it accepts is a key the store can hold.
func FuzzKeyBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","models":["*"],"storage_ops":["get","*"],"admin":true,"expires_at":"2099-01-01T00:00:00Z","budget":{"usd":1.5,"period":"day"}}`,
		`{"name":"a","budget":null,"expires_at":null}`,
		`{"name":"","group":"x"}`,
		`{"name":"a","budget":{"usd":1e400}}`,
		`{"name":"a","models":[null]}`,
		`{"name":"a"} {"name":"b"}`,
		`[]`, `null`, `{"name":"\u0000"}`,
		`{"name":"a","limits":{"rpm":3,"rps":1,"tpm":5000,"concurrency":2}}`,
		`{"name":"a","limits":{"rpm":-1,"tpm":null}}`,
		`{"name":"a","limits":null}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, err := decodeObject(body)
		if err != nil {
			return
		}
		k := &store.Key{CreatedAt: now}
		if err := apply(k, fields, now); err != nil {
			return
		}
		if len(k.Name) > maxText || !utf8.ValidString(k.Name) {
			t.Fatalf("accepted name %q", k.Name)
		}
		for _, op := range k.StorageOps {
			if op != "*" && !slices.Contains([]string{"put", "get", "head", "list", "delete", "presign"}, op) {
				t.Fatalf("accepted storage op %q", op)
			}
		}
		if k.ExpiresAt != nil && !k.ExpiresAt.After(now) {
			t.Fatalf("accepted expiry %v before creation", k.ExpiresAt)
		}
		if k.Limits != nil && (k.Limits.Validate() != nil || k.Limits.Empty()) {
			t.Fatalf("accepted limits %+v", k.Limits)
		}
		if k.Budget != nil && (k.Budget.USD < 0 || !slices.Contains(budgetPeriods, k.Budget.Period)) {
			t.Fatalf("accepted budget %+v", k.Budget)
		}
	})
}
