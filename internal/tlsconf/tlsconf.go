package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/chatd/chatd/httpapi"
)

// Deps are what New needs beyond the Config.
type Deps struct {
	// Redis and RedisPrefix locate the "redis" ACME cache.
	Redis       *redis.Options
	RedisPrefix string
	Logger      *slog.Logger // nil discards
}

// TLS is a running TLS setup: certificate files or an ACME manager.
type TLS struct {
	cfg   Config
	log   *slog.Logger
	files *certFiles
	acme  *autocert.Manager
	cache io.Closer // the Redis cache's connections; nil otherwise
}

// New loads the certificate files (an error names the key at fault) or
// prepares the ACME manager; cfg must be Enabled and valid.
func New(cfg Config, d Deps) (*TLS, error) {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &TLS{cfg: cfg, log: log}
	if !cfg.ACME() {
		f, err := loadCertFiles(cfg.CertFile, cfg.KeyFile, log)
		if err != nil {
			return nil, err
		}
		t.files = f
		return t, nil
	}
	client := &http.Client{Timeout: time.Minute}
	if cfg.ACMECARootFile != "" {
		pool, err := LoadCAFile(cfg.ACMECARootFile)
		if err != nil {
			return nil, fmt.Errorf("tls.acme_ca_root_file: %w", err)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Proxy: http.ProxyFromEnvironment}
	}
	var cache autocert.Cache
	switch cfg.ACMECache {
	case CacheRedis:
		if d.Redis == nil {
			return nil, errors.New("tls.acme_cache: redis needs pubsub.redis_url")
		}
		rc := NewRedisCache(d.Redis, d.RedisPrefix)
		cache, t.cache = rc, rc
	default:
		if cfg.ACMECacheDir == "" {
			return nil, errors.New("tls.acme_cache_dir: required with tls.acme_cache=dir")
		}
		cache = autocert.DirCache(cfg.ACMECacheDir) // created 0700 on first write
	}
	allowed := autocert.HostWhitelist(cfg.ACMEDomains...)
	t.acme = &autocert.Manager{
		Prompt: autocert.AcceptTOS,
		// HTTP-01 requests name the host with the port when it is not 80.
		HostPolicy: func(ctx context.Context, host string) error {
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			return allowed(ctx, host)
		},
		Cache:       cache,
		Email:       cfg.ACMEEmail,
		RenewBefore: cfg.ACMERenewBefore,
		Client:      &acme.Client{DirectoryURL: cfg.ACMECAURL, HTTPClient: client, UserAgent: "chatd"},
	}
	return t, nil
}

// LoadCAFile returns a pool of the PEM certificates in path.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// TLSConfig is the listener's configuration: TLS 1.2 or later with Go's
// default suites, HTTP/2 and HTTP/1.1 (WebSockets take HTTP/1.1), and with
// ACME the acme-tls/1 protocol of TLS-ALPN-01.
func (t *TLS) TLSConfig() *tls.Config {
	if t.acme != nil {
		c := t.acme.TLSConfig()
		c.MinVersion = tls.VersionTLS12
		return c
	}
	return &tls.Config{GetCertificate: t.files.GetCertificate, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
}

// Start obtains (or loads from the cache) the certificate of every ACME
// domain in the background, so the first client does not wait for the
// order and a misconfigured DNS shows in the log at start. It returns at once.
func (t *TLS) Start() {
	if t.acme == nil {
		return
	}
	for _, d := range t.cfg.ACMEDomains {
		go func() {
			// A hello that supports ECDSA, as every current browser's does:
			// autocert keeps an ECDSA and an RSA certificate apart.
			cert, err := t.acme.GetCertificate(&tls.ClientHelloInfo{
				ServerName:        d,
				SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
				SupportedCurves:   []tls.CurveID{tls.CurveP256},
				CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
				SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
			})
			if err != nil {
				t.log.Warn("tls: no certificate yet; clients trigger another attempt (check that the name's DNS points here and ports 80 and 443 reach this process)",
					"domain", d, "ca", t.cfg.ACMECAURL, "err", err)
				return
			}
			t.log.Info("tls: certificate ready", "domain", d, "not_after", cert.Leaf.NotAfter)
		}()
	}
}

// Close releases the cache's connections.
func (t *TLS) Close() error {
	if t.cache != nil {
		return t.cache.Close()
	}
	return nil
}

// HTTPHandler is the plain-HTTP listener's handler: ACME HTTP-01 challenge
// answers under /.well-known/acme-challenge/ (with ACME), and for the rest
// a redirect of GET and HEAD to the same URL on HTTPS at httpsAddr's port
// (none when 443); other methods get 400, since their body already crossed
// the network in clear.
func (t *TLS) HTTPHandler(httpsAddr string) http.Handler {
	port := "443"
	if _, p, err := net.SplitHostPort(httpsAddr); err == nil && p != "" && p != "0" {
		port = p
	}
	h := redirect(port)
	if t.acme != nil {
		return t.acme.HTTPHandler(h)
	}
	return h
}

var errUseHTTPS = &httpapi.Error{Status: http.StatusBadRequest, Code: httpapi.CodeInvalidRequest, Message: "this server takes requests over HTTPS only"}

func redirect(port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !validHost(host) {
			httpapi.WriteError(w, errUseHTTPS)
			return
		}
		if port != "443" || strings.Contains(host, ":") {
			host = net.JoinHostPort(host, port)
			host = strings.TrimSuffix(host, ":443")
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
}

// validHost accepts an IP address or a DNS name (one label too: localhost).
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	return validDomain(h) || validDomain(h+".x")
}

// HSTS adds Strict-Transport-Security with maxAge to every answer over TLS
// (browsers ignore it over plain HTTP); no includeSubDomains, no preload:
// those bind names beyond this server and are the operator's to add at a
// proxy. maxAge 0 returns h.
func HSTS(h http.Handler, maxAge time.Duration) http.Handler {
	if maxAge <= 0 {
		return h
	}
	value := "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", value)
		}
		h.ServeHTTP(w, r)
	})
}
