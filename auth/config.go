package auth

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/chatd/chatd/httpapi"
)

// Config is the auth role's configuration (the "auth" section of config.yaml).
type Config struct {
	// Issuer and Audience are the JWT iss and aud of access tokens.
	Issuer   string `mapstructure:"issuer"`
	Audience string `mapstructure:"audience"`
	// AccessTTL is the lifetime of an access token (the chatd_session cookie).
	AccessTTL time.Duration `mapstructure:"access_ttl"`
	// RefreshTTL is the lifetime of a refresh token; each rotation restarts it.
	RefreshTTL time.Duration `mapstructure:"refresh_ttl"`
	// CookieSecure sets the Secure attribute on the session cookies. Browsers
	// accept Secure cookies on http://localhost; turn it off only to serve
	// other hosts over plain HTTP.
	CookieSecure bool `mapstructure:"cookie_secure"`
	// KeyFile is the PEM file of the Ed25519 signing key; empty means
	// <data_dir>/signing.key (the app resolves it and passes the path).
	KeyFile string `mapstructure:"key_file"`
	// SessionMaxAge is the absolute lifetime of a session from its login:
	// refreshes never extend it past that.
	SessionMaxAge time.Duration `mapstructure:"session_max_age"`
	// RefreshGrace is how long after a rotation the previous refresh token
	// is answered as a concurrent refresh (200 without cookies) rather than
	// as a reuse (the session revoked). See docs/api.md.
	RefreshGrace time.Duration `mapstructure:"refresh_grace"`
	// MaxFailedLogins failed logins of one account from one client address
	// within FailedLoginWindow make further attempts from that address
	// answer 429 until the oldest one leaves the window. The same number of
	// failures of one account from all addresses together starts its
	// backoff (see LoginBackoffMax).
	MaxFailedLogins   int           `mapstructure:"max_failed_logins"`
	FailedLoginWindow time.Duration `mapstructure:"failed_login_window"`
	// MaxFailedLoginsPerAddress failed logins from one address within
	// FailedLoginWindow, whatever the accounts, make it answer 429.
	MaxFailedLoginsPerAddress int `mapstructure:"max_failed_logins_per_address"`
	// LoginBackoffMax caps the per-account backoff: once an account has
	// MaxFailedLogins failures in the window, an address that has failed
	// for it waits 1 s, doubling per further failure up to this, between
	// attempts. Addresses that have not failed for it are never delayed.
	LoginBackoffMax time.Duration `mapstructure:"login_backoff_max"`
	// LoginRateLimit is the number of login and token attempts per second
	// allowed per client address (token bucket refill), LoginBurst the
	// bucket's size. 0 turns it off.
	LoginRateLimit float64 `mapstructure:"login_rate_limit"`
	LoginBurst     int     `mapstructure:"login_burst"`
	// SignupLimit signups per client address are allowed per SignupWindow
	// (a bucket of SignupLimit refilled evenly over the window). 0 turns it
	// off.
	SignupLimit  int           `mapstructure:"signup_limit"`
	SignupWindow time.Duration `mapstructure:"signup_window"`
	// TrustedProxies are the proxies (CIDRs or addresses) whose
	// X-Forwarded-For names the client. Not a config key: app sets it from
	// http.trusted_proxies.
	TrustedProxies []string `mapstructure:"-"`
	// Argon2 sets the cost of new password hashes. Stored hashes carry their
	// own parameters, so changing it does not invalidate existing passwords.
	Argon2 Argon2Params `mapstructure:"argon2"`
	// BodyLimit is the largest accepted request body, in bytes.
	BodyLimit int64 `mapstructure:"body_limit"`
	// SessionRetention is how long a session is kept after its refresh
	// token expired or it was revoked; then the pruner deletes it.
	SessionRetention time.Duration `mapstructure:"session_retention"`
	// SessionPruneInterval is how often the pruner looks for such sessions.
	SessionPruneInterval time.Duration `mapstructure:"session_prune_interval"`
	// PublicOrigins are the origins ("https://chat.example.com") allowed to
	// make cookie-authenticated unsafe requests; empty means the request's
	// own host. Not a config key: app sets it from http.public_origins.
	PublicOrigins []string `mapstructure:"-"`
}

// Argon2Params are argon2id's cost parameters.
type Argon2Params struct {
	MemoryKiB uint32 `mapstructure:"memory_kib"`
	Time      uint32 `mapstructure:"time"`
	Threads   uint8  `mapstructure:"threads"`
}

// DefaultConfig returns the defaults listed in config.yaml.
func DefaultConfig() Config {
	return Config{
		Issuer:                    "chatd",
		Audience:                  "chatd",
		AccessTTL:                 time.Hour,
		RefreshTTL:                720 * time.Hour,
		CookieSecure:              true,
		SessionMaxAge:             90 * 24 * time.Hour,
		RefreshGrace:              10 * time.Second,
		MaxFailedLogins:           10,
		FailedLoginWindow:         15 * time.Minute,
		MaxFailedLoginsPerAddress: 100,
		LoginBackoffMax:           time.Minute,
		LoginRateLimit:            20,
		LoginBurst:                100,
		SignupLimit:               10,
		SignupWindow:              time.Hour,
		// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
		Argon2:               Argon2Params{MemoryKiB: 19456, Time: 2, Threads: 1},
		BodyLimit:            64 << 10,
		SessionRetention:     7 * 24 * time.Hour,
		SessionPruneInterval: time.Hour,
	}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(c.Issuer) == "" {
		bad("auth.issuer must not be empty")
	}
	if strings.TrimSpace(c.Audience) == "" {
		bad("auth.audience must not be empty")
	}
	if c.AccessTTL <= 0 {
		bad("auth.access_ttl must be > 0")
	}
	if c.RefreshTTL <= 0 {
		bad("auth.refresh_ttl must be > 0")
	} else if c.RefreshTTL < c.AccessTTL {
		bad("auth.refresh_ttl must be >= auth.access_ttl")
	}
	if c.MaxFailedLogins <= 0 {
		bad("auth.max_failed_logins must be > 0")
	} else if c.MaxFailedLogins > 1000 {
		bad("auth.max_failed_logins must be <= 1000")
	}
	if c.FailedLoginWindow <= 0 {
		bad("auth.failed_login_window must be > 0")
	}
	if c.MaxFailedLoginsPerAddress < c.MaxFailedLogins {
		bad("auth.max_failed_logins_per_address must be >= auth.max_failed_logins")
	}
	if c.LoginBackoffMax < time.Second {
		bad("auth.login_backoff_max must be >= 1s")
	}
	if c.LoginRateLimit < 0 {
		bad("auth.login_rate_limit must be >= 0 (0 turns the limit off)")
	} else if c.LoginRateLimit > 0 && c.LoginBurst < 1 {
		bad("auth.login_burst must be >= 1 while auth.login_rate_limit is on")
	}
	if c.SignupLimit < 0 {
		bad("auth.signup_limit must be >= 0 (0 turns the limit off)")
	} else if c.SignupLimit > 0 && c.SignupWindow <= 0 {
		bad("auth.signup_window must be > 0 while auth.signup_limit is on")
	}
	if c.SessionMaxAge < c.AccessTTL {
		bad("auth.session_max_age must be >= auth.access_ttl")
	}
	if c.RefreshGrace < 0 || c.RefreshGrace > time.Minute {
		bad("auth.refresh_grace must be between 0 and 1m")
	}
	if _, err := httpapi.ParseProxies(c.TrustedProxies); err != nil {
		bad("http.trusted_proxies: %v", err)
	}
	if c.Argon2.Time < 1 || c.Argon2.Time > maxArgon2Time {
		bad("auth.argon2.time must be between 1 and %d", maxArgon2Time)
	}
	if c.Argon2.Threads < 1 {
		bad("auth.argon2.threads must be >= 1")
	}
	if c.Argon2.MemoryKiB < 8*uint32(max(c.Argon2.Threads, 1)) {
		bad("auth.argon2.memory_kib must be >= 8 × auth.argon2.threads")
	} else if c.Argon2.MemoryKiB > maxArgon2MemoryKiB {
		bad("auth.argon2.memory_kib must be <= %d", maxArgon2MemoryKiB)
	}
	if c.SessionRetention < c.AccessTTL {
		// An access token outlives its session's revocation by up to
		// access_ttl; the session must still be found (revoked) meanwhile.
		bad("auth.session_retention must be >= auth.access_ttl")
	}
	if c.SessionPruneInterval < time.Second {
		bad("auth.session_prune_interval must be >= 1s")
	}
	if c.BodyLimit < 1024 {
		bad("auth.body_limit must be >= 1024")
	}
	for _, o := range c.PublicOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			bad("auth.public_origins: %q is not an origin (scheme://host[:port])", o)
		}
	}
	return errors.Join(errs...)
}
