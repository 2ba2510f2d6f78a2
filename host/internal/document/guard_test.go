package document

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"testing"
)

func TestNonPublic(t *testing.T) {
	tests := []struct {
		ip      string
		blocked bool
	}{
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"10.1.2.3", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"172.32.0.1", false},
		{"192.168.1.1", true},
		{"169.254.169.254", true},
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		{"100.128.0.1", false},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"224.0.0.1", true},
		{"255.255.255.255", true},
		{"198.18.0.1", true},
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"::", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:8.8.8.8", false},
		{"::127.0.0.1", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"fec0::1", true},
		{"ff02::1", true},
		{"64:ff9b::7f00:1", true},
		{"64:ff9b::a9fe:a9fe", true},
		{"64:ff9b::808:808", false},
		{"64:ff9b:1::1", true},
		{"2002:7f00:1::", true},
		{"2002:808:808::", false},
		{"2001::1", true},
		{"2001:db8::1", true},
		{"100::1", true},
		{"2606:4700::1111", false},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			got := nonPublic(netip.MustParseAddr(tt.ip)) != ""
			if got != tt.blocked {
				t.Errorf("nonPublic(%s) blocked = %v, want %v", tt.ip, got, tt.blocked)
			}
		})
	}
}

func TestPolicyAllowLists(t *testing.T) {
	p, err := NewPolicy([]string{"docs.internal", "*.corp.example", "Upper.Example."}, []string{"10.1.0.0/16", "192.168.7.7", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		check func() bool
		want  bool
	}{
		{"exact host", func() bool { return p.HostAllowed("docs.internal") }, true},
		{"host with trailing dot", func() bool { return p.HostAllowed("DOCS.internal.") }, true},
		{"normalised entry", func() bool { return p.HostAllowed("upper.example") }, true},
		{"subdomain pattern", func() bool { return p.HostAllowed("a.b.corp.example") }, true},
		{"pattern excludes apex", func() bool { return p.HostAllowed("corp.example") }, false},
		{"pattern is not a substring match", func() bool { return p.HostAllowed("evilcorp.example") }, false},
		{"other host", func() bool { return p.HostAllowed("docs.internal.evil") }, false},
		{"cidr", func() bool { return p.CheckAddr("h", netip.MustParseAddr("10.1.9.9")) == nil }, true},
		{"mapped form of cidr", func() bool { return p.CheckAddr("h", netip.MustParseAddr("::ffff:10.1.9.9")) == nil }, true},
		{"outside cidr", func() bool { return p.CheckAddr("h", netip.MustParseAddr("10.2.0.1")) == nil }, false},
		{"single address", func() bool { return p.CheckAddr("h", netip.MustParseAddr("192.168.7.7")) == nil }, true},
		{"v6 cidr", func() bool { return p.CheckAddr("h", netip.MustParseAddr("fd00::5")) == nil }, true},
		{"public", func() bool { return p.CheckAddr("h", netip.MustParseAddr("8.8.4.4")) == nil }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.check(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewPolicyErrors(t *testing.T) {
	tests := []struct {
		name         string
		hosts, cidrs []string
	}{
		{"empty host", []string{""}, nil},
		{"bare wildcard", []string{"*"}, nil},
		{"bad cidr", nil, []string{"10.0.0.0/33"}},
		{"not an address", nil, []string{"intranet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewPolicy(tt.hosts, tt.cidrs); err == nil {
				t.Fatal("NewPolicy succeeded, want an error")
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	p, err := NewPolicy(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://example.com/a.pdf", true},
		{"http://example.com:8080/a", true},
		{"https://[2606:4700::1111]/x", true},
		{"https://8.8.8.8/x", true},
		{"https://v1.example/x", true},
		{"ftp://example.com/a", false},
		{"file:///etc/passwd", false},
		{"gopher://example.com/", false},
		{"javascript:alert(1)", false},
		{"http:///nohost", false},
		{"http://user:pw@example.com/", false},
		{"http://example.com@127.0.0.1/", false},
		{"http://2130706433/", false},
		{"http://0x7f000001/", false},
		{"http://0177.0.0.1/", false},
		{"http://127.1/", false},
		{"http://example.123/", false},
		{"http://example.0x1f/", false},
		{"http://127.0.0.1/", false},
		{"http://[::1]/", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			err = p.CheckURL(u)
			if (err == nil) != tt.ok {
				t.Errorf("CheckURL(%s) = %v, want ok=%v", tt.url, err, tt.ok)
			}
			var be *BlockedError
			if err != nil && !errors.As(err, &be) {
				t.Errorf("error %T is not a *BlockedError", err)
			}
		})
	}
}

func TestControlChecksDialledAddress(t *testing.T) {
	p, err := NewPolicy(nil, []string{"192.0.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ctx  context.Context
		addr string
		ok   bool
	}{
		{context.Background(), "127.0.0.1:80", false},
		{context.Background(), "[::1]:80", false},
		{context.Background(), "10.0.0.1:443", false},
		{context.Background(), "169.254.169.254:80", false},
		{context.Background(), "[::ffff:127.0.0.1]:80", false},
		{context.Background(), "192.0.2.10:80", true},
		{context.Background(), "8.8.8.8:443", true},
		{context.Background(), "not-an-ip:80", false},
		{withDialInfo(context.Background(), "docs.internal", true), "10.0.0.1:443", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := p.control(tt.ctx, "tcp4", tt.addr, nil)
			if (err == nil) != tt.ok {
				t.Errorf("control(%s) = %v, want ok=%v", tt.addr, err, tt.ok)
			}
		})
	}
}
