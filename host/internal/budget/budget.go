// Package budget enforces hard spending budgets on API keys and key
// groups. Before a request runs, the gateway reserves its worst-case cost
// on every budget the request counts against, all or none; a reservation
// that would take any budget past its limit is refused, so the request
// never reaches the upstream. When the answer is in, the reservation is
// settled to the real cost.
//
// Budgets run over a period whose windows are aligned to UTC: a day from
// midnight, an ISO week from Monday midnight, a calendar month, or the
// whole lifetime ("total"). Amounts are kept as whole nano-dollars, so
// that sums are exact in memory and in Redis alike.
package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Periods a budget may run over.
const (
	Day   = "day"
	Week  = "week"
	Month = "month"
	Total = "total"
)

// nano is one USD in the ledger's unit.
const nano = 1e9

// Account is one budget a request counts against: an API key's or a key
// group's.
type Account struct {
	// Name identifies the budget in the ledger, e.g. "key:alice" or
	// "group:research".
	Name string
	// USD is the most the account may spend in one window.
	USD float64
	// Period is Day, Week, Month or Total; "" means Month.
	Period string
}

// ValidPeriod reports whether p names a period ("" is Month).
func ValidPeriod(p string) bool {
	switch p {
	case "", Day, Week, Month, Total:
		return true
	}
	return false
}

// Window returns the name and the end of the window of period that holds
// t (in UTC); a Total window never ends (zero time).
func Window(period string, t time.Time) (name string, end time.Time) {
	t = t.UTC()
	y, m, d := t.Date()
	switch period {
	case Day:
		start := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return start.Format("d2006-01-02"), start.AddDate(0, 0, 1)
	case Week:
		wd := (int(t.Weekday()) + 6) % 7 // Monday is 0
		start := time.Date(y, m, d-wd, 0, 0, 0, 0, time.UTC)
		return start.Format("w2006-01-02"), start.AddDate(0, 0, 7)
	case Total:
		return "total", time.Time{}
	default:
		start := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return start.Format("m2006-01"), start.AddDate(0, 1, 0)
	}
}

// Slot is one account's current window as a backend sees it.
type Slot struct {
	// Key names the window's counter, e.g. "key:alice:d2026-12-03".
	Key string
	// Limit is the most the window may hold, in nano-dollars.
	Limit int64
	// Expire is when the counter may be dropped (zero: never).
	Expire time.Time
}

// Backend keeps the counters of every window.
type Backend interface {
	// Take adds amount to every slot's counter if none would pass its
	// limit, atomically. Otherwise it changes nothing and returns the
	// index of the first slot that would, with that counter's value; it
	// returns -1 when the amount was taken.
	Take(ctx context.Context, slots []Slot, amount int64) (refused int, spent int64, err error)
	// Adjust adds delta (negative to give back) to every counter named,
	// without a limit.
	Adjust(ctx context.Context, slots []Slot, delta int64) error
	// Spent returns the counter of key (0 when absent).
	Spent(ctx context.Context, key string) (int64, error)
}

// ExceededError is the refusal of a reservation that would take an
// account past its budget.
type ExceededError struct {
	Account Account
	// Spent is what the account's window already holds (settled and
	// reserved), Request the reservation refused, both in USD.
	Spent, Request float64
}

func (e *ExceededError) Error() string {
	period := e.Account.Period
	if period == "" {
		period = Month
	}
	return fmt.Sprintf("budget of %s exceeded: $%.6f of $%.6f spent or reserved this %s; this request may cost up to $%.6f",
		e.Account.Name, e.Spent, e.Account.USD, period, e.Request)
}

// Ledger reserves and settles costs on accounts over a Backend.
type Ledger struct {
	b      Backend
	prefix string
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time
}

// New returns a ledger over b whose counters are named prefix+account+window.
func New(b Backend, prefix string) *Ledger {
	return &Ledger{b: b, prefix: prefix}
}

func (l *Ledger) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Ledger) slots(accounts []Account, now time.Time) []Slot {
	out := make([]Slot, len(accounts))
	for i, a := range accounts {
		w, end := Window(a.Period, now)
		var exp time.Time
		if !end.IsZero() {
			exp = end.Add(24 * time.Hour) // kept a day after, for reports
		}
		out[i] = Slot{Key: l.prefix + a.Name + ":" + w, Limit: toNanos(a.USD, math.Floor), Expire: exp}
	}
	return out
}

func toNanos(usd float64, round func(float64) float64) int64 {
	if usd <= 0 || math.IsNaN(usd) {
		return 0
	}
	n := round(usd * nano)
	if n >= math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return int64(n)
}

// Reserve charges usd (rounded up to a nano-dollar) to the current window
// of every account, all or none. It returns an *ExceededError when any
// account would pass its budget, or the backend's error; the request must
// then not run.
func (l *Ledger) Reserve(ctx context.Context, accounts []Account, usd float64) (*Hold, error) {
	slots := l.slots(accounts, l.now())
	amount := toNanos(usd, math.Ceil)
	i, spent, err := l.b.Take(ctx, slots, amount)
	if err != nil {
		return nil, fmt.Errorf("budget ledger: %w", err)
	}
	if i >= 0 {
		return nil, &ExceededError{Account: accounts[i], Spent: float64(spent) / nano, Request: float64(amount) / nano}
	}
	return &Hold{l: l, slots: slots, amount: amount}, nil
}

// Spent returns what the current window of a holds, in USD.
func (l *Ledger) Spent(ctx context.Context, a Account) (float64, error) {
	s := l.slots([]Account{a}, l.now())[0]
	n, err := l.b.Spent(ctx, s.Key)
	return float64(n) / nano, err
}

// Hold is an accepted reservation, to be settled once.
type Hold struct {
	l      *Ledger
	slots  []Slot
	amount int64
	once   sync.Once
}

// Extend adds usd to the reservation, on the windows it was taken from
// and on the same terms as Reserve: all or none, an *ExceededError when
// an account would pass its budget. It is meant for what is learnt after
// the reservation (documents resolved later) and must not run beside
// Settle.
func (h *Hold) Extend(ctx context.Context, accounts []Account, usd float64) error {
	amount := toNanos(usd, math.Ceil)
	if amount == 0 {
		return nil
	}
	i, spent, err := h.l.b.Take(ctx, h.slots, amount)
	if err != nil {
		return fmt.Errorf("budget ledger: %w", err)
	}
	if i >= 0 {
		return &ExceededError{Account: accounts[i], Spent: float64(spent) / nano, Request: float64(h.amount+amount) / nano}
	}
	h.amount += amount
	return nil
}

// Reserved returns the reservation in USD.
func (h *Hold) Reserved() float64 { return float64(h.amount) / nano }

// Settle replaces the reservation by the real cost usd on the windows it
// was taken from (also when the window has since ended). Later calls do
// nothing.
func (h *Hold) Settle(ctx context.Context, usd float64) error {
	if h == nil {
		return nil
	}
	err := errAlreadySettled
	h.once.Do(func() {
		delta := toNanos(usd, math.Round) - h.amount
		err = nil
		if delta != 0 {
			err = h.l.b.Adjust(ctx, h.slots, delta)
		}
	})
	if errors.Is(err, errAlreadySettled) {
		return nil
	}
	return err
}

var errAlreadySettled = errors.New("already settled")
