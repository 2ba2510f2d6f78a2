package auth

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/pgtest"
	"github.com/llmproxy/llmproxy/host/internal/store"
)

// replicas opens the same database twice, as two llmproxy processes
// would.
func replicas(t *testing.T, driver string) (store.Store, store.Store) {
	t.Helper()
	source := filepath.Join(t.TempDir(), "llmproxy.db")
	if driver == store.DriverPostgres {
		source = pgtest.Database(t)
	}
	var out [2]store.Store
	for i := range out {
		st, err := store.Open(context.Background(), driver, source)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		out[i] = st
	}
	return out[0], out[1]
}

// countingStore counts the key version reads.
type countingStore struct {
	store.Store
	reads atomic.Int64
}

func (c *countingStore) KeysVersion(ctx context.Context) (int64, error) {
	c.reads.Add(1)
	return c.Store.KeysVersion(ctx)
}

func TestStoredRevocationAcrossReplicas(t *testing.T) {
	for _, driver := range []string{store.DriverSQLite, store.DriverPostgres} {
		t.Run(driver, func(t *testing.T) {
			a, b := replicas(t, driver)
			ctx := context.Background()
			lookupB := NewStored(b)
			secret := []byte("sk-llmp-replicated")
			// Unknown at first, and the miss is cached.
			if k, err := lookupB.Lookup(ctx, secret); err != nil || k != nil {
				t.Fatalf("before create: %v %v", k, err)
			}
			sk := &store.Key{ID: "key_r", Name: "replicated", Digest: sha256.Sum256(secret), Prefix: "sk-llm",
				Models: []string{"gpt-*"}, StorageOps: []string{"get"}, CreatedAt: time.Now()}
			if err := a.CreateKey(ctx, sk); err != nil {
				t.Fatal(err)
			}
			k, err := lookupB.Lookup(ctx, secret)
			if err != nil || k == nil || k.ID != "key_r" || !k.AllowsModel("gpt-4o") || k.AllowsModel("claude") || !k.AllowsStorageOp("get") {
				t.Fatalf("after create on A: %+v %v", k, err)
			}
			if k, _ := lookupB.Lookup(ctx, []byte("sk-llmp-other")); k != nil {
				t.Fatal("another secret matched")
			}
			sk.Models = []string{"claude"}
			if err := a.UpdateKey(ctx, sk); err != nil {
				t.Fatal(err)
			}
			if k, _ := lookupB.Lookup(ctx, secret); k == nil || k.AllowsModel("gpt-4o") || !k.AllowsModel("claude") {
				t.Fatalf("after update on A: %+v", k)
			}
			if _, err := a.RevokeKey(ctx, "key_r", time.Now()); err != nil {
				t.Fatal(err)
			}
			if k, err := lookupB.Lookup(ctx, secret); err != nil || k != nil {
				t.Fatalf("after revoke on A: %+v %v", k, err)
			}
		})
	}
}

func TestStoredCoalescesVersionReads(t *testing.T) {
	a, _ := replicas(t, store.DriverSQLite)
	cs := &countingStore{Store: a}
	s := NewStored(cs)
	secret := []byte("sk-llmp-busy")
	if err := a.CreateKey(context.Background(), &store.Key{ID: "key_b", Name: "busy", Digest: sha256.Sum256(secret), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const n = 400
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if k, err := s.Lookup(context.Background(), secret); err != nil || k == nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d lookups failed", failed.Load())
	}
	reads := cs.reads.Load()
	if reads >= n {
		t.Fatalf("%d concurrent lookups read the version %d times; reads are not shared", n, reads)
	}
	t.Logf("%d concurrent lookups: %d version reads in %v", n, reads, time.Since(start))
}

func TestStoredLookupCost(t *testing.T) {
	for _, driver := range []string{store.DriverSQLite, store.DriverPostgres} {
		t.Run(driver, func(t *testing.T) {
			a, _ := replicas(t, driver)
			s := NewStored(a)
			secret := []byte("sk-llmp-cost")
			if err := a.CreateKey(context.Background(), &store.Key{ID: "key_c", Name: "cost", Digest: sha256.Sum256(secret), CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			const n = 500
			start := time.Now()
			for range n {
				if k, err := s.Lookup(context.Background(), secret); err != nil || k == nil {
					t.Fatalf("lookup: %v %v", k, err)
				}
			}
			t.Logf("%s: %v per cached stored-key lookup (one version read each)", driver, time.Since(start)/n)
		})
	}
}
