package auth

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
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
	// MaxFailedLogins failed logins of one account within FailedLoginWindow
	// make further attempts answer 429 until the oldest one leaves the window.
	MaxFailedLogins   int           `mapstructure:"max_failed_logins"`
	FailedLoginWindow time.Duration `mapstructure:"failed_login_window"`
	// Argon2 sets the cost of new password hashes. Stored hashes carry their
	// own parameters, so changing it does not invalidate existing passwords.
	Argon2 Argon2Params `mapstructure:"argon2"`
	// BodyLimit is the largest accepted request body, in bytes.
	BodyLimit int64 `mapstructure:"body_limit"`
	// PublicOrigins are the origins ("https://chat.example.com") allowed to
	// make cookie-authenticated unsafe requests; empty means the request's
	// own host.
	PublicOrigins []string `mapstructure:"public_origins"`
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
		Issuer:            "chatd",
		Audience:          "chatd",
		AccessTTL:         time.Hour,
		RefreshTTL:        720 * time.Hour,
		CookieSecure:      true,
		MaxFailedLogins:   10,
		FailedLoginWindow: 15 * time.Minute,
		// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
		Argon2:    Argon2Params{MemoryKiB: 19456, Time: 2, Threads: 1},
		BodyLimit: 64 << 10,
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
