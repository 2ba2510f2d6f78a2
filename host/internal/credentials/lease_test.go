package credentials

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// leaseStore is a LeaseBackend that hands out one lease per read and
// records renewals and revocations.
type leaseStore struct {
	renewable bool
	grant     time.Duration // what a renewal grants
	failRenew bool
	reads     int
	renewed   []string
	revoked   []string
}

func (s *leaseStore) Resolve(_ context.Context, ref map[string]string) (Secret, error) {
	s.reads++
	id := fmt.Sprintf("%s/%d", ref["path"], s.reads)
	return Secret{Values: map[string]string{"access_key": "AKIA" + id, "secret_key": "s3cr3t-" + id}, Version: id,
		Expires: time.Now().Add(time.Minute), LeaseID: id, Renewable: s.renewable}, nil
}

func (s *leaseStore) Renew(_ context.Context, id string, increment time.Duration) (Secret, error) {
	if s.failRenew {
		return Secret{}, errors.New("vault: renew: 503 sealed")
	}
	s.renewed = append(s.renewed, id)
	grant := s.grant
	if grant == 0 {
		grant = increment
	}
	return Secret{LeaseID: id, Renewable: true, Expires: time.Now().Add(grant)}, nil
}

func (s *leaseStore) Revoke(_ context.Context, id string) error {
	s.revoked = append(s.revoked, id)
	return nil
}

func TestLeases(t *testing.T) {
	st := &leaseStore{renewable: true}
	r := Resolver{Backends: func(name string) Backend {
		if name == "vault" {
			return st
		}
		return nil
	}}
	creds := []config.Credential{
		{Name: "access_key_id", Sources: []config.Source{{Kind: "vault", Path: "aws/creds/a", Field: "access_key"}}},
		{Name: "secret_access_key", Sources: []config.Source{{Kind: "vault", Path: "aws/creds/a", Field: "secret_key"}}},
		{Name: "other", Sources: []config.Source{{Kind: "vault", Path: "aws/creds/b", Field: "access_key"}}},
	}
	res, err := r.Resolve(context.Background(), creds)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ls []Lease) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.ID)
		}
		return out
	}
	if got := ids(res.Leases); !slices.Equal(got, []string{"aws/creds/a/1", "aws/creds/b/2"}) {
		t.Fatalf("leases %v; want one per read, the shared read once", got)
	}
	if !Renewable(res.Leases) {
		t.Fatal("renewable leases of a LeaseBackend are not Renewable")
	}

	leases, first, err := RenewLeases(context.Background(), res.Leases, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.renewed) != 2 || time.Until(first) < 59*time.Minute || len(leases) != 2 {
		t.Errorf("renewed %v, first expiry in %v; want both leases renewed by the increment", st.renewed, time.Until(first))
	}

	st.failRenew = true
	if _, _, err := RenewLeases(context.Background(), res.Leases, time.Hour); err == nil {
		t.Error("a failed renewal is not reported")
	}

	again, err := r.Resolve(context.Background(), creds[:2])
	if err != nil {
		t.Fatal(err)
	}
	unused := Unused(res.Leases, again.Leases)
	if got := ids(unused); !slices.Equal(got, []string{"aws/creds/a/1", "aws/creds/b/2"}) {
		t.Errorf("unused %v; want both old leases", got)
	}
	if err := RevokeLeases(context.Background(), unused); err != nil || !slices.Equal(st.revoked, ids(unused)) {
		t.Errorf("revoked %v, %v; want the unused leases", st.revoked, err)
	}
	if len(Unused(again.Leases, again.Leases)) != 0 {
		t.Error("a lease in use is reported unused")
	}
}

func TestLeasesNotRenewable(t *testing.T) {
	tests := []struct {
		name   string
		leases []Lease
	}{
		{"none", nil},
		{"lease not renewable", []Lease{{ID: "x", b: &leaseStore{}}}},
		{"store cannot renew", []Lease{{ID: "x", Renewable: true, b: &storeBackend{}}}},
		{"one of two", []Lease{{ID: "x", Renewable: true, b: &leaseStore{}}, {ID: "y", b: &leaseStore{}}}},
	}
	for _, tt := range tests {
		if Renewable(tt.leases) {
			t.Errorf("%s: Renewable", tt.name)
		}
		if len(tt.leases) > 0 {
			if _, _, err := RenewLeases(context.Background(), tt.leases, time.Minute); !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("%s: RenewLeases: %v; want ErrUnsupported", tt.name, err)
			}
		}
	}
	// A store that cannot revoke is skipped, not an error.
	if err := RevokeLeases(context.Background(), []Lease{{ID: "x", b: &storeBackend{}}}); err != nil {
		t.Errorf("RevokeLeases on a store without Revoke: %v", err)
	}
}
