package push

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Endpoints are URLs users give: the server POSTs to them, so an endpoint
// must not reach the server's own network (SSRF). CheckEndpoint refuses
// what the URL shows; the sender's dialer refuses what its name resolves
// to, at connect time, so a DNS name pointing inside fails too.

// CheckEndpoint reports why endpoint may not be a subscription's, nil if it
// may: an https URL with a host, no user info, not a loopback, private or
// link-local address (http and those are allowed with allowInsecure).
func CheckEndpoint(endpoint string, allowInsecure bool) error {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return errors.New("endpoint must be an absolute https URL")
	case u.User != nil:
		return errors.New("endpoint must not carry user info")
	case u.Scheme != "https" && (u.Scheme != "http" || !allowInsecure):
		return errors.New("endpoint must be an https URL")
	}
	if allowInsecure {
		return nil
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || strings.HasSuffix(host, ".local") || strings.HasSuffix(host, ".internal") {
		return errors.New("endpoint must be a public host")
	}
	if ip, err := netip.ParseAddr(host); err == nil && !isPublic(ip) {
		return errors.New("endpoint must be a public address")
	}
	return nil
}

// cgnat is the shared address space of RFC 6598, not public either.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func isPublic(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !cgnat.Contains(ip)
}

// newClient is the push services' HTTP client: no redirects (a push service
// answers, it does not send elsewhere), no proxy, and unless allowInsecure
// a dialer that connects to public addresses only.
func newClient(timeout time.Duration, allowInsecure bool) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	if !allowInsecure {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil || !isPublic(ip) {
				return fmt.Errorf("push: refusing to connect to %s: not a public address", host)
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: timeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
