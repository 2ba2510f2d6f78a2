package credentials

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// LeaseBackend is a Backend whose leases can be extended and ended early
// (Vault's dynamic secrets). A store that cannot do one of them answers
// with an error wrapping errors.ErrUnsupported.
type LeaseBackend interface {
	Backend
	// Renew extends a lease by about increment and returns the secret's
	// new expiry and renewability; its values do not change.
	Renew(ctx context.Context, leaseID string, increment time.Duration) (Secret, error)
	// Revoke ends a lease: its values stop working.
	Revoke(ctx context.Context, leaseID string) error
}

// Lease is a store's lease on resolved values.
type Lease struct {
	// Backend is the name of the secrets block.
	Backend string
	// ID is the store's lease id.
	ID        string
	Renewable bool
	// Expires is when the lease ends unless renewed.
	Expires time.Time

	b Backend
}

// String names the lease without anything secret (a lease id is not a
// credential: it only lets a holder of a store token renew or revoke).
func (l Lease) String() string { return l.Backend + " lease " + l.ID }

// collectLeases returns the leases behind the statuses' values, each
// once: the fields of one read share its lease.
func collectLeases(statuses []Status) []Lease {
	var out []Lease
	seen := map[[2]string]bool{}
	for _, st := range statuses {
		if st.lease == nil {
			continue
		}
		k := [2]string{st.lease.Backend, st.lease.ID}
		if !seen[k] {
			seen[k] = true
			out = append(out, *st.lease)
		}
	}
	return out
}

// Renewable reports whether every lease can be renewed: there is at
// least one, and each is renewable in a store that can renew.
func Renewable(leases []Lease) bool {
	for _, l := range leases {
		if _, ok := l.b.(LeaseBackend); !ok || !l.Renewable {
			return false
		}
	}
	return len(leases) > 0
}

// RenewLeases renews every lease by increment and returns them with
// their new expiry, and the earliest of those. It fails on the first
// lease that cannot be renewed; the caller then resolves the values
// again.
func RenewLeases(ctx context.Context, leases []Lease, increment time.Duration) ([]Lease, time.Time, error) {
	out := make([]Lease, 0, len(leases))
	var first time.Time
	for _, l := range leases {
		lb, ok := l.b.(LeaseBackend)
		if !ok || !l.Renewable {
			return nil, time.Time{}, fmt.Errorf("%s is not renewable: %w", l, errors.ErrUnsupported)
		}
		s, err := lb.Renew(ctx, l.ID, increment)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("renew %s: %w", l, err)
		}
		l.Renewable, l.Expires = s.Renewable, s.Expires
		if s.Expires.IsZero() {
			return nil, time.Time{}, fmt.Errorf("renew %s: the store gave no new expiry", l)
		}
		if first.IsZero() || s.Expires.Before(first) {
			first = s.Expires
		}
		out = append(out, l)
	}
	return out, first, nil
}

// RevokeLeases ends every lease, best-effort: the first error is
// returned after every lease was tried. A store that cannot revoke is
// skipped.
func RevokeLeases(ctx context.Context, leases []Lease) error {
	var first error
	for _, l := range leases {
		lb, ok := l.b.(LeaseBackend)
		if !ok {
			continue
		}
		if err := lb.Revoke(ctx, l.ID); err != nil && !errors.Is(err, errors.ErrUnsupported) && first == nil {
			first = fmt.Errorf("revoke %s: %w", l, err)
		}
	}
	return first
}

// Unused returns the leases of old that are not in current.
func Unused(old, current []Lease) []Lease {
	keep := map[[2]string]bool{}
	for _, l := range current {
		keep[[2]string{l.Backend, l.ID}] = true
	}
	var out []Lease
	for _, l := range old {
		if !keep[[2]string{l.Backend, l.ID}] {
			out = append(out, l)
		}
	}
	return out
}
