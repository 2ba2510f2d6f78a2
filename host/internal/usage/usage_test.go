package usage

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/store"
)

func sqlite(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.DriverSQLite, filepath.Join(t.TempDir(), "llmproxy.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// stalled is a store whose writes wait until released, as a database
// that is down or locked would.
type stalled struct {
	store.Store
	release chan struct{}
	batches chan int
}

func (s *stalled) InsertUsage(ctx context.Context, recs []store.UsageRecord) error {
	s.batches <- len(recs)
	<-s.release
	return s.Store.InsertUsage(ctx, recs)
}

func TestRecordsAreWrittenInBatches(t *testing.T) {
	st := sqlite(t)
	r := New(Options{Store: st, Batch: 50, FlushEvery: 20 * time.Millisecond,
		Cost: func(u *store.UsageRecord) float64 { return float64(u.PromptTokens) / 1000 }})
	now := time.Now()
	for i := range 120 {
		if !r.Record(store.UsageRecord{RequestID: "r", Key: "k", Model: "m", Status: 200, PromptTokens: int64(i), Time: now}) {
			t.Fatal("record dropped with room in the buffer")
		}
	}
	// Priced by the hook unless already priced.
	r.Record(store.UsageRecord{RequestID: "priced", Key: "k", Model: "m", Status: 200, PromptTokens: 5, CostUSD: 7, Time: now})
	deadline := time.Now().Add(5 * time.Second)
	for r.Written() < 121 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r.Written() != 121 {
		t.Fatalf("written %d of 121", r.Written())
	}
	groups, err := st.UsageGroups(context.Background(), store.UsageQuery{GroupBy: store.GroupByModel})
	if err != nil || len(groups) != 1 || groups[0].Requests != 121 {
		t.Fatalf("%v %+v", err, groups)
	}
	// sum(0..119)/1000 + 7
	if want := 7140.0/1000 + 7; groups[0].CostUSD < want-1e-9 || groups[0].CostUSD > want+1e-9 {
		t.Fatalf("cost %v, want %v", groups[0].CostUSD, want)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFullBufferDropsWithoutBlocking(t *testing.T) {
	s := &stalled{Store: sqlite(t), release: make(chan struct{}), batches: make(chan int, 100)}
	r := New(Options{Store: s, Buffer: 10, Batch: 5, FlushEvery: time.Millisecond})
	// The writer takes the first batch and stalls in the database.
	for range 5 {
		r.Record(store.UsageRecord{RequestID: "first", Time: time.Now()})
	}
	<-s.batches
	start := time.Now()
	queued := 0
	for range 1000 {
		if r.Record(store.UsageRecord{RequestID: "burst", Time: time.Now()}) {
			queued++
		}
	}
	took := time.Since(start)
	if queued != 10 || r.Dropped() != 990 {
		t.Fatalf("queued %d, dropped %d; want 10 and 990", queued, r.Dropped())
	}
	if took > 100*time.Millisecond {
		t.Fatalf("1000 records took %v with the database stalled", took)
	}
	close(s.release)
	// Close writes what the buffer holds.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Written() != 15 {
		t.Fatalf("written %d, want 15", r.Written())
	}
	t.Logf("1000 records against a stalled database: %v", took)
}
