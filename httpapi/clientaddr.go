package httpapi

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ParseProxies parses http.trusted_proxies: CIDRs ("10.0.0.0/8") or single
// addresses ("10.1.2.3", a /32 or /128). The error names the bad entry.
func ParseProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ClientAddr is api.md's client address of r: the TCP peer, or, when the
// peer is one of trusted (the gateway, a load balancer), the right-most
// X-Forwarded-For entry that is not itself a trusted proxy. Entries left of
// that one were written by the client and are never believed. A malformed
// entry stops the walk at the last address a trusted proxy vouched for.
// It returns the zero Addr only when r.RemoteAddr is not an address (a test
// request built by hand); AddrKey still gives such a request a key.
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ip := PeerAddr(r.RemoteAddr)
	if !ip.IsValid() || !Trusted(trusted, ip) {
		return ip
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop := parseHop(strings.TrimSpace(hops[i]))
		if !hop.IsValid() {
			return ip
		}
		if !Trusted(trusted, hop) {
			return hop
		}
		ip = hop
	}
	return ip
}

// AddrKey is the key under which per-address limits count a client: its
// IPv4 address, or its IPv6 /64 (one subscriber's usual allocation, so that
// an attacker cannot step through 2^64 addresses). The zero Addr is "unknown".
func AddrKey(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is6():
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Trusted reports whether a is in one of prefixes (a trusted proxy).
func Trusted(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// PeerAddr parses http.Request.RemoteAddr ("1.2.3.4:5678", "[::1]:80"),
// IPv4-mapped addresses unmapped; the zero Addr if it is not an address.
func PeerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(remote)
	return a.Unmap()
}

// parseHop parses an X-Forwarded-For entry: an address, possibly with a
// port.
func parseHop(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
