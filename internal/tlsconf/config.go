// Package tlsconf is chatd's TLS: the tls.Config of the client-facing
// listener (certificate and key files reloaded when they change, or ACME
// with golang.org/x/crypto/acme/autocert), the plain-HTTP listener's handler
// (HTTP-01 challenges and a redirect to HTTPS) and the HSTS header.
//
// autocert rather than caddyserver/certmagic: it lives in golang.org/x/crypto,
// which chatd already pins, adds no other module, and does what chatd needs
// (HTTP-01 and TLS-ALPN-01, renewal, a Cache interface that a shared store can
// implement so that several gateways share one certificate and answer each
// other's HTTP-01 challenges). certmagic's extras (DNS-01, OCSP stapling,
// distributed issuance locks) cost dozens of modules.
package tlsconf

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

// Config is the "tls" section of the configuration. TLS is on when CertFile
// or ACMEDomains is set.
type Config struct {
	// CertFile and KeyFile are PEM files of the certificate (with its chain)
	// and its private key. They are read again when either changes.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ACMEDomains, instead of the files, are the names to obtain
	// certificates for from the ACME CA (--tls-domain).
	ACMEDomains []string `mapstructure:"acme_domains"`
	// ACMEEmail is the contact address of the ACME account (optional).
	ACMEEmail string `mapstructure:"acme_email"`
	// ACMECAURL is the CA's directory URL (default Let's Encrypt production).
	ACMECAURL string `mapstructure:"acme_ca_url"`
	// ACMECARootFile is a PEM file of CA certificates that the ACME
	// directory's own HTTPS certificate chains to, for a private or test CA
	// (Pebble); empty means the system roots.
	ACMECARootFile string `mapstructure:"acme_ca_root_file"`
	// ACMECache is where the account key and certificates are kept: "dir"
	// (ACMECacheDir) or "redis" (pubsub.redis_url, shared by every gateway).
	ACMECache string `mapstructure:"acme_cache"`
	// ACMECacheDir is the "dir" cache's directory; empty means <data_dir>/acme.
	ACMECacheDir string `mapstructure:"acme_cache_dir"`
	// ACMERenewBefore is how long before expiry a certificate is renewed; 0
	// means autocert's default, a third of its lifetime (at most 30 days).
	ACMERenewBefore time.Duration `mapstructure:"acme_renew_before"`
	// HTTPAddr is the plain-HTTP listener that answers HTTP-01 challenges
	// and redirects everything else to HTTPS; "off" turns it off.
	HTTPAddr string `mapstructure:"http_addr"`
	// HSTSMaxAge is the Strict-Transport-Security max-age of every HTTPS
	// answer; 0 sends no header.
	HSTSMaxAge time.Duration `mapstructure:"hsts_max_age"`
}

// Cache kinds.
const (
	CacheDir   = "dir"
	CacheRedis = "redis"
)

// DefaultConfig is TLS off, with Let's Encrypt, the directory cache, the
// plain-HTTP listener on :80 and a year of HSTS for when it is turned on.
func DefaultConfig() Config {
	return Config{
		ACMEDomains: []string{},
		ACMECAURL:   autocert.DefaultACMEDirectory,
		ACMECache:   CacheDir,
		HTTPAddr:    ":80",
		HSTSMaxAge:  365 * 24 * time.Hour,
	}
}

// Enabled reports whether the listener serves TLS.
func (c Config) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" || len(c.ACMEDomains) > 0 }

// ACME reports whether certificates come from an ACME CA.
func (c Config) ACME() bool { return len(c.ACMEDomains) > 0 }

// Validate reports the first bad setting, naming its key.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	if c.ACME() && (c.CertFile != "" || c.KeyFile != "") {
		return errors.New("tls.acme_domains: set either tls.cert_file and tls.key_file or tls.acme_domains, not both")
	}
	if !c.ACME() && (c.CertFile == "" || c.KeyFile == "") {
		return errors.New("tls.cert_file, tls.key_file: both are required to serve TLS from files")
	}
	for _, d := range c.ACMEDomains {
		if !validDomain(d) {
			return fmt.Errorf("tls.acme_domains: %q is not a DNS name like chat.example.org", d)
		}
	}
	if c.ACME() {
		if u, err := url.Parse(c.ACMECAURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("tls.acme_ca_url: %q is not an https URL of an ACME directory", c.ACMECAURL)
		}
		switch c.ACMECache {
		case CacheDir, CacheRedis:
		default:
			return fmt.Errorf("tls.acme_cache: %q is not dir or redis", c.ACMECache)
		}
		if c.ACMERenewBefore < 0 {
			return errors.New("tls.acme_renew_before: must not be negative (0 = a third of the certificate's lifetime)")
		}
		if len(c.ACMEEmail) > 254 || strings.ContainsAny(c.ACMEEmail, " \t\r\n") {
			return fmt.Errorf("tls.acme_email: %q is not an email address", c.ACMEEmail)
		}
	}
	if c.HTTPAddr == "" {
		return errors.New(`tls.http_addr: required with TLS on (for example :80), or "off"`)
	}
	if c.HSTSMaxAge < 0 {
		return errors.New("tls.hsts_max_age: must not be negative (0 = no HSTS header)")
	}
	return nil
}

// validDomain accepts a lower-or-upper-case DNS name of at least two labels,
// without a wildcard (HTTP-01 and TLS-ALPN-01 cannot prove one).
func validDomain(d string) bool {
	if len(d) == 0 || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}
