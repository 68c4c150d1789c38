package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/chatd/chatd/httpapi"
)

// Config is the gateway's part of the configuration (key prefix "gateway.").
type Config struct {
	// AuthUpstreams are the base URLs of the auth replicas, such as
	// http://auth-1:8080. /auth/* goes to them, round robin among the healthy.
	AuthUpstreams []string `mapstructure:"auth_upstreams"`
	// ChatUpstreams are the base URLs of the chat replicas. /api/* and /ws go
	// to the healthy one with the fewest active requests and WebSockets.
	ChatUpstreams []string `mapstructure:"chat_upstreams"`
	// ChatDNS, instead of ChatUpstreams, is a DNS name and port whose A and
	// AAAA records are the chat replicas (a Kubernetes headless Service:
	// one record per ready pod), such as chat-headless.chatd.svc:8080, or a
	// base URL like https://chat-headless:8443 to choose the scheme. It is
	// resolved again every DNSInterval; replicas join and leave the pool as
	// the answer changes.
	ChatDNS string `mapstructure:"chat_dns"`
	// DNSInterval is the period of the ChatDNS lookups.
	DNSInterval time.Duration `mapstructure:"dns_interval"`
	// HealthInterval is the period of the active check, GET <upstream>/readyz
	// (200 = healthy).
	HealthInterval time.Duration `mapstructure:"health_interval"`
	// HealthTimeout bounds one active check.
	HealthTimeout time.Duration `mapstructure:"health_timeout"`
	// TimeoutsToUnhealthy is the number of consecutive active checks whose
	// /readyz gives no answer within HealthTimeout before an upstream
	// leaves rotation: a replica busy with a reconnect storm answers one
	// check late and is not unready. A /readyz that answers anything but
	// 200, or a connection that fails, takes it out at the first check.
	TimeoutsToUnhealthy int `mapstructure:"timeouts_to_unhealthy"`
	// TunnelDropAfter is how long an upstream may give no answer at all
	// (to /readyz nor /healthz) before the gateway closes its WebSocket
	// tunnels with 1001 (going away: reconnect elsewhere), so their clients reconnect to a
	// replica that answers. An upstream that answers but is not ready keeps
	// them.
	TunnelDropAfter time.Duration `mapstructure:"tunnel_drop_after"`
	// WSWriteTimeout bounds a write to a WebSocket client through the
	// gateway: a client that takes no bytes for that long is closed with
	// 1013 (too slow), as chat.write_timeout does on a replica.
	WSWriteTimeout time.Duration `mapstructure:"ws_write_timeout"`
	// EjectAfter is the number of consecutive proxy failures (connection
	// errors, 502 answers) after which an upstream is taken out of rotation
	// until its next successful active check.
	EjectAfter int `mapstructure:"eject_after"`
	// LoginRateLimit is the number of POST /auth/login and /auth/token
	// attempts per second allowed per client address (token bucket refill
	// rate); 0 turns the limit off.
	LoginRateLimit float64 `mapstructure:"login_rate_limit"`
	// LoginBurst is the token bucket's size.
	LoginBurst int `mapstructure:"login_burst"`
	// UpstreamCAFile is a PEM file of the CA certificates that https://
	// upstreams (auth_upstreams, chat_upstreams, chat_dns) chain to, for
	// replicas serving TLS from an internal CA; empty means the system roots.
	UpstreamCAFile string `mapstructure:"upstream_ca_file"`
	// TrustedProxies are CIDRs (or single addresses) of proxies in front of
	// the gateway whose X-Forwarded-For, -Proto and -Host are believed.
	// Empty: the client address is the connection's remote address. Not a
	// config key: app sets it from http.trusted_proxies, the one setting of
	// every role (gateway.trusted_proxies is refused, naming it).
	TrustedProxies []string `mapstructure:"-"`
}

// DefaultConfig returns the defaults: no upstreams (they must be
// configured), DNS lookups of gateway.chat_dns every 5 s, checks every 2 s
// with a 1 s timeout (two in a row take an upstream out), tunnels of an
// upstream silent for 10 s closed, ejection after 3 consecutive failures,
// 20 login attempts per second per address with a burst of 100, and no
// trusted proxies.
func DefaultConfig() Config {
	return Config{
		DNSInterval:         5 * time.Second,
		HealthInterval:      2 * time.Second,
		HealthTimeout:       time.Second,
		TimeoutsToUnhealthy: 2,
		TunnelDropAfter:     10 * time.Second,
		WSWriteTimeout:      5 * time.Second,
		EjectAfter:          3,
		LoginRateLimit:      20,
		LoginBurst:          100,
	}
}

// Validate reports the first bad setting, naming its key.
func (c Config) Validate() error {
	if len(c.AuthUpstreams) == 0 {
		return errors.New("gateway.auth_upstreams: at least one upstream is required (for example http://auth:8080)")
	}
	switch {
	case len(c.ChatUpstreams) == 0 && c.ChatDNS == "":
		return errors.New("gateway.chat_upstreams: at least one upstream is required (for example http://chat:8080), or gateway.chat_dns")
	case len(c.ChatUpstreams) > 0 && c.ChatDNS != "":
		return errors.New("gateway.chat_dns: set either gateway.chat_upstreams or gateway.chat_dns, not both")
	case c.ChatDNS != "":
		if _, _, _, err := parseDNSTarget(c.ChatDNS); err != nil {
			return fmt.Errorf("gateway.chat_dns: %w", err)
		}
		if c.DNSInterval <= 0 {
			return errors.New("gateway.dns_interval: must be > 0 (for example 5s)")
		}
	}
	for _, u := range c.AuthUpstreams {
		if _, err := parseUpstream(u); err != nil {
			return fmt.Errorf("gateway.auth_upstreams: %w", err)
		}
	}
	for _, u := range c.ChatUpstreams {
		if _, err := parseUpstream(u); err != nil {
			return fmt.Errorf("gateway.chat_upstreams: %w", err)
		}
	}
	if c.HealthInterval <= 0 {
		return errors.New("gateway.health_interval: must be > 0 (for example 2s)")
	}
	if c.HealthTimeout <= 0 {
		return errors.New("gateway.health_timeout: must be > 0 (for example 1s)")
	}
	if c.TimeoutsToUnhealthy < 1 {
		return errors.New("gateway.timeouts_to_unhealthy: must be >= 1 (1: the first check without an answer in time takes an upstream out)")
	}
	if c.TunnelDropAfter <= 0 {
		return errors.New("gateway.tunnel_drop_after: must be > 0 (for example 10s)")
	}
	if c.WSWriteTimeout < 100*time.Millisecond {
		return errors.New("gateway.ws_write_timeout: must be at least 100ms (for example 5s)")
	}
	if c.EjectAfter < 1 {
		return errors.New("gateway.eject_after: must be >= 1")
	}
	if c.LoginRateLimit < 0 {
		return errors.New("gateway.login_rate_limit: must be >= 0 (0 turns the limit off)")
	}
	if c.LoginRateLimit > 0 && c.LoginBurst < 1 {
		return errors.New("gateway.login_burst: must be >= 1 while gateway.login_rate_limit is on")
	}
	if _, err := httpapi.ParseProxies(c.TrustedProxies); err != nil {
		return fmt.Errorf("http.trusted_proxies: %w", err)
	}
	return nil
}

// parseUpstream checks that s is an absolute http(s) base URL.
func parseUpstream(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q is not a base URL like http://chat-1:8080", s)
	}
	return u, nil
}
