package budget

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/redistest"
)

// backends runs f on the memory backend and on a real Redis.
func backends(t *testing.T, f func(t *testing.T, b Backend)) {
	t.Run("memory", func(t *testing.T) { f(t, NewMemory()) })
	t.Run("redis", func(t *testing.T) {
		r, err := NewRedis(redistest.Start(t).URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		f(t, r)
	})
}

func TestWindow(t *testing.T) {
	at := time.Date(2026, 12, 3, 22, 30, 0, 0, time.FixedZone("X", -5*3600)) // 2026-12-04 03:30 UTC, a Friday
	tests := []struct {
		period, name string
		end          time.Time
	}{
		{Day, "d2026-12-04", time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)},
		{Week, "w2026-11-30", time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)},
		{Month, "m2026-12", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"", "m2026-12", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Total, "total", time.Time{}},
	}
	for _, tc := range tests {
		name, end := Window(tc.period, at)
		if name != tc.name || !end.Equal(tc.end) {
			t.Errorf("Window(%q) = %s, %v; want %s, %v", tc.period, name, end, tc.name, tc.end)
		}
	}
	// A Sunday belongs to the week that started the Monday before.
	if name, _ := Window(Week, time.Date(2026, 12, 6, 23, 59, 0, 0, time.UTC)); name != "w2026-11-30" {
		t.Errorf("Sunday's week = %s", name)
	}
}

func TestReserveSettle(t *testing.T) {
	backends(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		l := New(b, DefaultPrefix)
		key := Account{Name: "key:alice", USD: 0.01, Period: Day}
		h, err := l.Reserve(ctx, []Account{key}, 0.004)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Settle(ctx, 0.001); err != nil {
			t.Fatal(err)
		}
		if err := h.Settle(ctx, 0.5); err != nil { // a second settlement changes nothing
			t.Fatal(err)
		}
		if got, _ := l.Spent(ctx, key); got != 0.001 {
			t.Fatalf("spent %v after settling, want 0.001", got)
		}
		h2, err := l.Reserve(ctx, []Account{key}, 0.009)
		if err != nil {
			t.Fatalf("0.009 on 0.001 of 0.01 refused: %v", err)
		}
		_, err = l.Reserve(ctx, []Account{key}, 0.000000001)
		var ex *ExceededError
		if !errors.As(err, &ex) || ex.Account.Name != "key:alice" || ex.Spent != 0.01 {
			t.Fatalf("reservation past the budget: %v", err)
		}
		// Extending past the budget is refused and changes nothing.
		var ex2 *ExceededError
		if err := h2.Extend(ctx, []Account{key}, 0.0005); !errors.As(err, &ex2) {
			t.Fatalf("extension past the budget: %v", err)
		}
		if got, _ := l.Spent(ctx, key); got != 0.01 {
			t.Fatalf("spent %v after a refused extension, want 0.01", got)
		}
		// Giving back makes room again.
		if err := h2.Settle(ctx, 0); err != nil {
			t.Fatal(err)
		}
		h3, err := l.Reserve(ctx, []Account{key}, 0.004)
		if err != nil {
			t.Fatal(err)
		}
		if err := h3.Extend(ctx, []Account{key}, 0.005); err != nil {
			t.Fatal(err)
		}
		if h3.Reserved() != 0.009 {
			t.Fatalf("reserved %v after extending, want 0.009", h3.Reserved())
		}
		if err := h3.Settle(ctx, 0.002); err != nil {
			t.Fatal(err)
		}
		if got, _ := l.Spent(ctx, key); got != 0.003 {
			t.Fatalf("spent %v after settling an extended hold, want 0.003", got)
		}
	})
}

// TestAllOrNone: a reservation refused by the group's budget charges
// neither the group nor the key.
func TestAllOrNone(t *testing.T) {
	backends(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		l := New(b, DefaultPrefix)
		key := Account{Name: "key:bob", USD: 1}
		group := Account{Name: "group:team", USD: 0.05, Period: Week}
		if _, err := l.Reserve(ctx, []Account{key, group}, 0.04); err != nil {
			t.Fatal(err)
		}
		_, err := l.Reserve(ctx, []Account{key, group}, 0.02)
		var ex *ExceededError
		if !errors.As(err, &ex) || ex.Account.Name != "group:team" {
			t.Fatalf("err = %v, want the group's budget", err)
		}
		if got, _ := l.Spent(ctx, key); got != 0.04 {
			t.Fatalf("the key holds %v after a refused reservation, want 0.04", got)
		}
	})
}

// TestConcurrentReservations: of many reservations at once, exactly as
// many as fit are accepted.
func TestConcurrentReservations(t *testing.T) {
	backends(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		l := New(b, DefaultPrefix)
		key := Account{Name: "key:carol", USD: 0.01, Period: Month}
		var ok, refused atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := l.Reserve(ctx, []Account{key}, 0.0007)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.As(err, new(*ExceededError)):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 14 || refused.Load() != 50 { // 14 × 0.0007 = 0.0098
			t.Fatalf("%d accepted, %d refused; want 14 and 50", ok.Load(), refused.Load())
		}
		if got, _ := l.Spent(ctx, key); got > key.USD {
			t.Fatalf("spent %v over the budget %v", got, key.USD)
		}
	})
}

// TestRollover: a new window starts empty, and a reservation taken before
// the rollover settles on the window it was taken from.
func TestRollover(t *testing.T) {
	backends(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		now := time.Date(2026, 12, 3, 23, 59, 59, 0, time.UTC)
		l := New(b, "test:")
		l.Now = func() time.Time { return now }
		key := Account{Name: "key:dave", USD: 1, Period: Day}
		h, err := l.Reserve(ctx, []Account{key}, 0.9)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Reserve(ctx, []Account{key}, 0.2); err == nil {
			t.Fatal("over-budget reservation accepted")
		}
		now = now.Add(2 * time.Second) // the next UTC day
		if _, err := l.Reserve(ctx, []Account{key}, 0.2); err != nil {
			t.Fatalf("the new day is not empty: %v", err)
		}
		if err := h.Settle(ctx, 0.5); err != nil {
			t.Fatal(err)
		}
		if got, _ := l.Spent(ctx, key); got != 0.2 {
			t.Fatalf("today holds %v, want 0.2", got)
		}
		now = now.Add(-time.Hour)
		if got, _ := l.Spent(ctx, key); got != 0.5 {
			t.Fatalf("yesterday holds %v after settling, want 0.5", got)
		}
		// A total budget never rolls over.
		total := Account{Name: "key:erin", USD: 1, Period: Total}
		if _, err := l.Reserve(ctx, []Account{total}, 0.6); err != nil {
			t.Fatal(err)
		}
		now = now.AddDate(1, 0, 0)
		if _, err := l.Reserve(ctx, []Account{total}, 0.6); err == nil {
			t.Fatal("a total budget rolled over")
		}
	})
}

// TestRedisExpiry: window counters expire a day after their window ends.
func TestRedisExpiry(t *testing.T) {
	url := redistest.Start(t).URL()
	r, err := NewRedis(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := New(r, "exp:")
	if _, err := l.Reserve(context.Background(), []Account{{Name: "key:f", USD: 1, Period: Day}}, 0.1); err != nil {
		t.Fatal(err)
	}
	name, end := Window(Day, time.Now())
	ttl, err := r.client.TTL(context.Background(), "exp:key:f:"+name).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := time.Until(end.Add(24 * time.Hour))
	if ttl <= 0 || ttl > want+time.Second || ttl < want-5*time.Second {
		t.Fatalf("ttl %v, want about %v", ttl, want)
	}
}

// TestRedisDown: an unreachable Redis refuses with an error, not a
// reservation.
func TestRedisDown(t *testing.T) {
	r, err := NewRedis("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h, err := New(r, "").Reserve(ctx, []Account{{Name: "key:g", USD: 1}}, 0.1)
	if err == nil || h != nil || errors.As(err, new(*ExceededError)) {
		t.Fatalf("Reserve = %v, %v; want a backend error", h, err)
	}
}
