package auth

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	d := DefaultConfig()
	if d.Issuer != "chatd" || d.Audience != "chatd" || d.AccessTTL != time.Hour || d.RefreshTTL != 720*time.Hour ||
		!d.CookieSecure || d.MaxFailedLogins != 10 || d.FailedLoginWindow != 15*time.Minute ||
		d.Argon2 != (Argon2Params{MemoryKiB: 19456, Time: 2, Threads: 1}) || d.BodyLimit != 64<<10 {
		t.Errorf("defaults = %+v", d)
	}
	cases := []struct {
		key string
		mod func(*Config)
	}{
		{"auth.issuer", func(c *Config) { c.Issuer = "" }},
		{"auth.audience", func(c *Config) { c.Audience = " " }},
		{"auth.access_ttl", func(c *Config) { c.AccessTTL = 0 }},
		{"auth.refresh_ttl", func(c *Config) { c.RefreshTTL = -time.Second }},
		{"auth.refresh_ttl", func(c *Config) { c.RefreshTTL = time.Minute }},
		{"auth.max_failed_logins", func(c *Config) { c.MaxFailedLogins = 0 }},
		{"auth.failed_login_window", func(c *Config) { c.FailedLoginWindow = 0 }},
		{"auth.argon2.time", func(c *Config) { c.Argon2.Time = 0 }},
		{"auth.argon2.threads", func(c *Config) { c.Argon2.Threads = 0 }},
		{"auth.argon2.memory_kib", func(c *Config) { c.Argon2.MemoryKiB = 4 }},
		{"auth.body_limit", func(c *Config) { c.BodyLimit = 0 }},
		{"auth.public_origins", func(c *Config) { c.PublicOrigins = []string{"chat.example.com"} }},
		{"auth.public_origins", func(c *Config) { c.PublicOrigins = []string{"https://chat.example.com/app"} }},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: Validate() = %v, want an error naming it", tc.key, err)
		}
	}
	c := DefaultConfig()
	c.PublicOrigins = []string{"https://chat.example.com", "http://localhost:8080/"}
	if err := c.Validate(); err != nil {
		t.Errorf("good origins refused: %v", err)
	}
}
