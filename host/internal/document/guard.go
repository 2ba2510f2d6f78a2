package document

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// BlockedError says a URL or address may not be fetched. Reason is meant
// for the client and never names an address the host resolved.
type BlockedError struct {
	Host   string
	Reason string
}

// Error implements error.
func (e *BlockedError) Error() string {
	return fmt.Sprintf("document URL host %q is not allowed: %s", e.Host, e.Reason)
}

// Policy decides which hosts and addresses the Fetcher may connect to:
// public unicast addresses, plus what the operator allow-listed.
type Policy struct {
	hosts    map[string]bool
	suffixes []string
	cidrs    []netip.Prefix
}

// NewPolicy returns a Policy allowing the given host names ("*.x.com"
// matches every subdomain of x.com) and CIDRs in addition to public
// addresses.
func NewPolicy(hosts, cidrs []string) (*Policy, error) {
	p := &Policy{hosts: map[string]bool{}}
	var errs []error
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		switch {
		case h == "" || h == "*" || h == "*.":
			errs = append(errs, fmt.Errorf("allow_hosts: %q is not a host name", h))
		case strings.HasPrefix(h, "*."):
			p.suffixes = append(p.suffixes, h[1:])
		default:
			p.hosts[h] = true
		}
	}
	for _, c := range cidrs {
		pfx, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			if a, aerr := netip.ParseAddr(strings.TrimSpace(c)); aerr == nil {
				pfx, err = a.Prefix(a.BitLen())
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("allow_cidrs: %w", err))
			continue
		}
		p.cidrs = append(p.cidrs, pfx.Masked())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// HostAllowed reports whether host is allow-listed by name, so that its
// addresses are not checked.
func (p *Policy) HostAllowed(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if p.hosts[host] {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// CheckAddr returns a *BlockedError when ip is not a public unicast
// address and no allow-listed CIDR contains it.
func (p *Policy) CheckAddr(host string, ip netip.Addr) error {
	ip = ip.WithZone("")
	for _, pfx := range p.cidrs {
		if pfx.Contains(ip) || (ip.Is4In6() && pfx.Contains(ip.Unmap())) {
			return nil
		}
	}
	if reason := nonPublic(ip); reason != "" {
		return &BlockedError{Host: host, Reason: "its address is " + reason}
	}
	return nil
}

// CheckURL validates the parts of u that decide where it connects: the
// scheme (http or https), no user info, and a host that is either a
// canonical IP literal or a DNS name that cannot be read as an IPv4
// number (2130706433, 0x7f.1, 0177.0.0.1, 127.1 are refused). IP literals
// are checked against the policy here; names are checked when dialled.
func (p *Policy) CheckURL(u *url.URL) error {
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	default:
		return &BlockedError{Host: u.Host, Reason: fmt.Sprintf("scheme %q is not http or https", u.Scheme)}
	}
	if u.User != nil {
		return &BlockedError{Host: u.Host, Reason: "URLs with user info are not accepted"}
	}
	host := u.Hostname()
	if host == "" {
		return &BlockedError{Host: u.Host, Reason: "the URL has no host"}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if p.HostAllowed(host) {
			return nil
		}
		return p.CheckAddr(host, ip)
	}
	if strings.ContainsAny(host, "%[]") {
		return &BlockedError{Host: host, Reason: "the host is not a valid name"}
	}
	if endsInNumber(host) {
		return &BlockedError{Host: host, Reason: "numeric hosts must be written as canonical IP addresses"}
	}
	return nil
}

// endsInNumber reports whether a URL parser following the WHATWG rules
// would read host as an IPv4 number: its last label is decimal, or 0x hex.
func endsInNumber(host string) bool {
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := labels[len(labels)-1]
	if last == "" {
		return false
	}
	if l := strings.ToLower(last); strings.HasPrefix(l, "0x") {
		_, err := strconv.ParseUint("0"+l[2:], 16, 64)
		return err == nil
	}
	for _, r := range last {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// control is a net.Dialer ControlContext: it checks the address actually
// being connected to, after DNS, for every connection of every hop.
func (p *Policy) control(ctx context.Context, _, address string, _ syscall.RawConn) error {
	if dialHostAllowed(ctx) {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &BlockedError{Host: address, Reason: "the dialled address is not an IP address"}
	}
	return p.CheckAddr(dialHost(ctx), ap.Addr())
}

type dialKey struct{}

type dialInfo struct {
	host    string
	allowed bool
}

func withDialInfo(ctx context.Context, host string, allowed bool) context.Context {
	return context.WithValue(ctx, dialKey{}, dialInfo{host: host, allowed: allowed})
}

func dialHostAllowed(ctx context.Context) bool {
	d, _ := ctx.Value(dialKey{}).(dialInfo)
	return d.allowed
}

func dialHost(ctx context.Context) string {
	d, _ := ctx.Value(dialKey{}).(dialInfo)
	return d.host
}

type blockedRange struct {
	prefix netip.Prefix
	reason string
	// embedded is the byte offset of an embedded IPv4 address that is
	// checked instead of blocking the whole range, or -1.
	embedded int
}

func block(cidr, reason string) blockedRange {
	return blockedRange{prefix: netip.MustParsePrefix(cidr), reason: reason, embedded: -1}
}

func embed(cidr, reason string, offset int) blockedRange {
	return blockedRange{prefix: netip.MustParsePrefix(cidr), reason: reason, embedded: offset}
}

// blockedRanges are the special-purpose ranges of the IANA IPv4 and IPv6
// registries that are not globally reachable, plus translation ranges
// whose embedded IPv4 address is checked in turn.
var blockedRanges = []blockedRange{
	block("0.0.0.0/8", "this-network"),
	block("10.0.0.0/8", "private"),
	block("100.64.0.0/10", "shared (CGNAT)"),
	block("127.0.0.0/8", "loopback"),
	block("169.254.0.0/16", "link-local"),
	block("172.16.0.0/12", "private"),
	block("192.0.0.0/24", "IETF protocol"),
	block("192.0.2.0/24", "documentation"),
	block("192.88.99.0/24", "6to4 relay"),
	block("192.168.0.0/16", "private"),
	block("198.18.0.0/15", "benchmarking"),
	block("198.51.100.0/24", "documentation"),
	block("203.0.113.0/24", "documentation"),
	block("224.0.0.0/4", "multicast"),
	block("240.0.0.0/4", "reserved"),
	block("::/128", "unspecified"),
	block("::1/128", "loopback"),
	embed("64:ff9b::/96", "NAT64", 12),
	block("64:ff9b:1::/48", "local NAT64"),
	block("::/96", "IPv4-compatible"),
	block("100::/64", "discard-only"),
	block("2001::/23", "IETF protocol"),
	block("2001:db8::/32", "documentation"),
	embed("2002::/16", "6to4", 2),
	block("fc00::/7", "unique-local"),
	block("fe80::/10", "link-local"),
	block("fec0::/10", "site-local"),
	block("ff00::/8", "multicast"),
}

// nonPublic returns why ip is not a public unicast address, or "".
func nonPublic(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid"
	}
	ip = ip.WithZone("")
	if ip.Is4In6() {
		if reason := nonPublic(ip.Unmap()); reason != "" {
			return "IPv4-mapped " + reason
		}
		return ""
	}
	for _, b := range blockedRanges {
		if !b.prefix.Contains(ip) {
			continue
		}
		if b.embedded < 0 {
			return b.reason
		}
		a := ip.As16()
		v4 := netip.AddrFrom4([4]byte(a[b.embedded : b.embedded+4]))
		if reason := nonPublic(v4); reason != "" {
			return b.reason + " " + reason
		}
		return ""
	}
	return ""
}
