package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/pgtest"
	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
)

// openers are the databases every store test runs against.
func openers(t *testing.T) map[string]func(t *testing.T) Store {
	return map[string]func(t *testing.T) Store{
		DriverSQLite: func(t *testing.T) Store {
			st, err := Open(context.Background(), DriverSQLite, filepath.Join(t.TempDir(), "llmproxy.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		DriverPostgres: func(t *testing.T) Store {
			st, err := Open(context.Background(), DriverPostgres, pgtest.Database(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
}

func forEachDriver(t *testing.T, test func(t *testing.T, st Store)) {
	for name, open := range openers(t) {
		t.Run(name, func(t *testing.T) { test(t, open(t)) })
	}
}

func newKey(id, name, secret string) *Key {
	return &Key{ID: id, Name: name, Digest: sha256.Sum256([]byte(secret)), Prefix: secret[:6],
		Models: []string{"gpt-*"}, StorageOps: []string{"get"}, CreatedAt: time.Unix(1700000000, 0).UTC()}
}

func TestKeys(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		v0, err := st.KeysVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		k := newKey("key_a", "alice", "sk-secret-a")
		k.Budget = &config.Budget{USD: 1.5, Period: "day"}
		exp := time.Unix(1800000000, 0).UTC()
		k.ExpiresAt = &exp
		if err := st.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if k.Version <= v0 {
			t.Fatalf("version %d after create, was %d", k.Version, v0)
		}
		got, err := st.KeyByDigest(ctx, sha256.Sum256([]byte("sk-secret-a")))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != "key_a" || got.Name != "alice" || got.Budget == nil || got.Budget.USD != 1.5 || got.Budget.Period != "day" ||
			len(got.Models) != 1 || got.Models[0] != "gpt-*" || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) ||
			got.RevokedAt != nil || !got.CreatedAt.Equal(k.CreatedAt) || got.Passthrough == nil {
			t.Fatalf("read back %+v", got)
		}
		for _, dup := range []*Key{newKey("key_b", "alice", "sk-secret-b"), newKey("key_c", "carol", "sk-secret-a"), newKey("key_a", "dave", "sk-secret-d")} {
			if err := st.CreateKey(ctx, dup); !errors.Is(err, ErrConflict) {
				t.Errorf("create %s/%s: %v, want a conflict", dup.ID, dup.Name, err)
			}
		}
		if _, err := st.Key(ctx, "key_missing"); !st.IsNotFound(err) {
			t.Fatalf("missing key: %v", err)
		}
		if _, err := st.KeyByDigest(ctx, sha256.Sum256([]byte("nope"))); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing digest: %v", err)
		}
		b := newKey("key_b", "bob", "sk-secret-b")
		if err := st.CreateKey(ctx, b); err != nil {
			t.Fatal(err)
		}
		b.Name, b.Admin, b.Budget, b.Models = "bobby", true, nil, nil
		before := b.Version
		if err := st.UpdateKey(ctx, b); err != nil {
			t.Fatal(err)
		}
		if b.Version <= before {
			t.Fatal("update did not raise the version")
		}
		b.Name = "alice"
		if err := st.UpdateKey(ctx, b); !errors.Is(err, ErrConflict) {
			t.Fatalf("rename onto another key: %v", err)
		}
		if err := st.UpdateKey(ctx, &Key{ID: "key_missing", Name: "x"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update missing: %v", err)
		}
		got, _ = st.Key(ctx, "key_b")
		if got.Name != "bobby" || !got.Admin || got.Budget != nil || len(got.Models) != 0 {
			t.Fatalf("after update %+v", got)
		}
		at := time.Unix(1750000000, 0).UTC()
		r, err := st.RevokeKey(ctx, "key_b", at)
		if err != nil {
			t.Fatal(err)
		}
		if r.RevokedAt == nil || !r.RevokedAt.Equal(at) || r.Active(time.Now()) {
			t.Fatalf("revoked %+v", r)
		}
		if r, _ = st.RevokeKey(ctx, "key_b", at.Add(time.Hour)); !r.RevokedAt.Equal(at) {
			t.Fatal("a second revoke moved revoked_at")
		}
		if _, err := st.RevokeKey(ctx, "key_missing", at); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoke missing: %v", err)
		}
		v, _ := st.KeysVersion(ctx)
		if v < r.Version {
			t.Fatalf("version %d < key version %d", v, r.Version)
		}
		all, err := st.Keys(ctx)
		if err != nil || len(all) != 2 || all[0].ID != "key_a" || all[1].ID != "key_b" {
			t.Fatalf("list: %v %+v", err, all)
		}
	})
}

func TestUsage(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		base := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
		recs := []UsageRecord{
			{RequestID: "r1", Key: "alice", Model: "gpt-4o", Instance: "openai", Status: 200, PromptTokens: 10, CompletionTokens: 5, CachedTokens: 2, CostUSD: 0.5, Latency: time.Millisecond, Time: base},
			{RequestID: "r2", Key: "alice", Model: "gpt-4o", Instance: "azure", Status: 502, Time: base.Add(time.Hour)},
			{RequestID: "r3", Key: "bob", Model: "claude", Instance: "anthropic", Status: 200, PromptTokens: 7, CompletionTokens: 3, ReasoningTokens: 1, CacheWriteTokens: 4, CostUSD: 0.25, Time: base.Add(25 * time.Hour)},
		}
		if err := st.InsertUsage(ctx, recs); err != nil {
			t.Fatal(err)
		}
		// A batch larger than one statement.
		many := make([]UsageRecord, 1200)
		for i := range many {
			many[i] = UsageRecord{RequestID: "m", Key: "carol", Model: "m", Instance: "i", Status: 200, PromptTokens: 1, Time: base.Add(-time.Hour)}
		}
		if err := st.InsertUsage(ctx, many); err != nil {
			t.Fatal(err)
		}
		groups, err := st.UsageGroups(ctx, UsageQuery{GroupBy: GroupByModel, From: base})
		if err != nil {
			t.Fatal(err)
		}
		want := []UsageGroup{
			{Group: "claude", Requests: 1, PromptTokens: 7, CompletionTokens: 3, CacheWriteTokens: 4, ReasoningTokens: 1, CostUSD: 0.25},
			{Group: "gpt-4o", Requests: 2, Errors: 1, PromptTokens: 10, CompletionTokens: 5, CachedTokens: 2, CostUSD: 0.5},
		}
		if len(groups) != len(want) || groups[0] != want[0] || groups[1] != want[1] {
			t.Fatalf("by model:\n got %+v\nwant %+v", groups, want)
		}
		groups, err = st.UsageGroups(ctx, UsageQuery{GroupBy: GroupByDay, Key: "alice"})
		if err != nil || len(groups) != 1 || groups[0].Group != "2026-12-01T00:00:00Z" || groups[0].Requests != 2 {
			t.Fatalf("by day: %v %+v", err, groups)
		}
		groups, err = st.UsageGroups(ctx, UsageQuery{GroupBy: GroupByHour, From: base, To: base.Add(2 * time.Hour)})
		if err != nil || len(groups) != 2 || groups[0].Group != "2026-12-01T10:00:00Z" || groups[1].Group != "2026-12-01T11:00:00Z" {
			t.Fatalf("by hour: %v %+v", err, groups)
		}
		groups, err = st.UsageGroups(ctx, UsageQuery{GroupBy: GroupByKey})
		if err != nil || len(groups) != 3 || groups[2].Group != "carol" || groups[2].Requests != 1200 {
			t.Fatalf("by key: %v %+v", err, groups)
		}
		if _, err := st.UsageGroups(ctx, UsageQuery{GroupBy: "color"}); err == nil {
			t.Fatal("unknown grouping accepted")
		}
		raw, err := st.Usage(ctx, UsageQuery{Key: "alice", Model: "gpt-4o"})
		if err != nil || len(raw) != 2 || raw[0].RequestID != "r2" || raw[1] != recs[0] {
			t.Fatalf("raw: %v %+v", err, raw)
		}
		raw, err = st.Usage(ctx, UsageQuery{Limit: 5})
		if err != nil || len(raw) != 5 {
			t.Fatalf("limit: %v %d", err, len(raw))
		}
	})
}

func TestResponses(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		now := time.Now()
		if err := st.PutResponse(ctx, "resp_1", "alice", []byte(`{"a":1}`), now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := st.PutResponse(ctx, "resp_old", "alice", []byte(`{}`), now.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		body, err := st.GetResponse(ctx, "resp_1", "alice")
		if err != nil || string(body) != `{"a":1}` {
			t.Fatalf("get: %v %s", err, body)
		}
		for _, c := range []struct{ id, owner string }{{"resp_1", "bob"}, {"resp_old", "alice"}, {"resp_none", "alice"}} {
			if _, err := st.GetResponse(ctx, c.id, c.owner); !st.IsNotFound(err) {
				t.Errorf("get %s as %s: %v, want not found", c.id, c.owner, err)
			}
		}
		if err := st.PutResponse(ctx, "resp_1", "alice", []byte(`{"a":2}`), now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if body, _ := st.GetResponse(ctx, "resp_1", "alice"); string(body) != `{"a":2}` {
			t.Fatalf("replaced: %s", body)
		}
		n, err := st.SweepResponses(ctx, now)
		if err != nil || n != 1 {
			t.Fatalf("sweep: %v %d", err, n)
		}
		if err := st.DeleteResponse(ctx, "resp_1", "bob"); !st.IsNotFound(err) {
			t.Fatalf("another owner deleted: %v", err)
		}
		if err := st.DeleteResponse(ctx, "resp_1", "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetResponse(ctx, "resp_1", "alice"); !st.IsNotFound(err) {
			t.Fatalf("a deleted response was found: %v", err)
		}
		if err := st.DeleteResponse(ctx, "resp_1", "alice"); !st.IsNotFound(err) {
			t.Fatalf("deleted twice: %v", err)
		}
	})
}

func TestMigrateTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	for range 2 {
		st, err := Open(context.Background(), DriverSQLite, path)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	if _, err := Open(context.Background(), "mysql", "x"); err == nil {
		t.Fatal("unknown driver accepted")
	}
}

func TestModifyKey(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		if err := st.CreateKey(ctx, newKey("key_m", "counter", "sk-secret-m")); err != nil {
			t.Fatal(err)
		}
		// Concurrent read-modify-writes of one key lose no change.
		const n = 20
		errs := make(chan error, n)
		for i := range n {
			go func() {
				_, err := st.ModifyKey(ctx, "key_m", func(k *Key) error {
					k.Models = append(k.Models, fmt.Sprintf("m%d", i))
					return nil
				})
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		k, err := st.Key(ctx, "key_m")
		if err != nil || len(k.Models) != n+1 {
			t.Fatalf("%v: %d models after %d concurrent changes, want %d", err, len(k.Models), n, n+1)
		}
		// An error of fn writes nothing.
		stop := errors.New("refused")
		if _, err := st.ModifyKey(ctx, "key_m", func(k *Key) error { k.Name = "other"; return stop }); err != stop {
			t.Fatalf("fn error: %v", err)
		}
		if k, _ := st.Key(ctx, "key_m"); k.Name != "counter" {
			t.Fatal("a refused change was written")
		}
		if _, err := st.ModifyKey(ctx, "key_none", func(*Key) error { return nil }); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
	})
}

func TestKeyLimitsRoundTrip(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		k := newKey("key_l", "limited", "sk-secret-l")
		k.Limits = &ratelimit.KeyLimits{RPM: 3, RPS: 1, TPM: 5000, Concurrent: 2}
		if err := st.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		got, err := st.Key(ctx, "key_l")
		if err != nil {
			t.Fatal(err)
		}
		if got.Limits == nil || *got.Limits != *k.Limits {
			t.Fatalf("limits read back as %+v, want %+v", got.Limits, k.Limits)
		}
		got, err = st.ModifyKey(ctx, "key_l", func(k *Key) error {
			k.Limits = &ratelimit.KeyLimits{RPM: 100}
			return nil
		})
		if err != nil || *got.Limits != (ratelimit.KeyLimits{RPM: 100}) {
			t.Fatalf("modify: %v %+v", err, got)
		}
		all, err := st.Keys(ctx)
		if err != nil || len(all) != 1 || all[0].Limits == nil || all[0].Limits.RPM != 100 || all[0].Limits.TPM != 0 {
			t.Fatalf("list: %v %+v", err, all)
		}
		// No limits, nil or all zero, are stored as none.
		for _, none := range []*ratelimit.KeyLimits{nil, {}} {
			got.Limits = none
			if err := st.UpdateKey(ctx, got); err != nil {
				t.Fatal(err)
			}
			back, err := st.KeyByDigest(ctx, sha256.Sum256([]byte("sk-secret-l")))
			if err != nil || back.Limits != nil {
				t.Fatalf("cleared limits read back as %v %+v", err, back)
			}
		}
	})
}

// TestMigrateKeyLimits opens a database made by the first schema version
// and checks that its keys survive the limits migration without limits.
func TestMigrateKeyLimits(t *testing.T) {
	for driver, dsn := range map[string]func(t *testing.T) string{
		DriverSQLite:   func(t *testing.T) string { return filepath.Join(t.TempDir(), "old.db") },
		DriverPostgres: func(t *testing.T) string { return pgtest.Database(t) },
	} {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			source := dsn(t)
			all := migrations
			migrations = all[:1]
			old, err := Open(ctx, driver, source)
			migrations = all
			if err != nil {
				t.Fatal(err)
			}
			_, err = old.(*sqlStore).db.ExecContext(ctx, old.(*sqlStore).q(`INSERT INTO api_keys
				(id, name, digest, prefix, created_at, version) VALUES (?, ?, ?, ?, ?, ?)`),
				"key_old", "old", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "sk-old", 1, 1)
			old.Close()
			if err != nil {
				t.Fatal(err)
			}
			st, err := Open(ctx, driver, source)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			k, err := st.Key(ctx, "key_old")
			if err != nil || k.Limits != nil || k.Name != "old" {
				t.Fatalf("after the migration: %v %+v", err, k)
			}
			k.Limits = &ratelimit.KeyLimits{TPM: 10}
			if err := st.UpdateKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		})
	}
}
