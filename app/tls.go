package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/internal/tlsconf"
	"github.com/chatd/chatd/pubsub/redispubsub"
)

// listenTLS, when tls.* turns TLS on, makes a.srv serve HTTPS on ln (HSTS
// on every answer), starts the plain-HTTP listener on tls.http_addr
// (HTTP-01 answers and the redirect to HTTPS) and the ACME certificates'
// first order; it returns the listener to serve. With TLS off it returns ln.
func (a *App) listenTLS(ln net.Listener) (net.Listener, error) {
	c := a.cfg.TLS
	if !c.Enabled() {
		return ln, nil
	}
	deps := tlsconf.Deps{RedisPrefix: a.cfg.PubSub.ChannelPrefix + "acme:", Logger: a.logger("tls")}
	if c.ACME() && c.ACMECache == tlsconf.CacheRedis {
		ro, err := redispubsub.ClientOptions(redispubsub.Options{URL: a.cfg.PubSub.RedisURL,
			CAFile: a.cfg.PubSub.RedisCAFile, CertFile: a.cfg.PubSub.RedisCertFile, KeyFile: a.cfg.PubSub.RedisKeyFile})
		if err != nil {
			return nil, fmt.Errorf("tls.acme_cache: %w", err)
		}
		deps.Redis = ro
	}
	t, err := tlsconf.New(c, deps)
	if err != nil {
		return nil, err
	}
	a.tls = t
	a.srv.Handler = tlsconf.HSTS(a.srv.Handler, c.HSTSMaxAge)
	a.srv.TLSConfig = t.TLSConfig()
	if c.HTTPAddr != "off" {
		hln, err := net.Listen("tcp", c.HTTPAddr)
		if err != nil {
			_ = t.Close()
			return nil, fmt.Errorf("listen on %s (tls.http_addr): %w", c.HTTPAddr, err)
		}
		trusted, _ := httpapi.ParseProxies(a.cfg.HTTP.TrustedProxies)
		hln = httpapi.LimitListener(hln, a.cfg.HTTP.MaxConns, a.cfg.HTTP.MaxConnsPerAddr, trusted, nil)
		a.plainSrv = &http.Server{
			Handler:           httpapi.BodyDeadline(t.HTTPHandler(ln.Addr().String()), a.cfg.HTTP.BodyTimeout),
			ReadHeaderTimeout: a.cfg.HTTP.ReadHeaderTimeout,
			IdleTimeout:       30 * time.Second,
			ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
		}
		a.plainLn = hln
		go func() { _ = a.plainSrv.Serve(hln) }()
		a.log.Info("chatd plain-HTTP listener: redirects to HTTPS and answers ACME HTTP-01", "addr", hln.Addr().String())
	}
	t.Start()
	return tls.NewListener(ln, a.srv.TLSConfig), nil
}

// jwksClient fetches keys.jwks_url trusting keys.ca_file's CA
// certificates (an auth role serving TLS from an internal CA); without the
// file, nil: the key set's default client and the system roots.
func jwksClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	pool, err := tlsconf.LoadCAFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("keys.ca_file: %w", err)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}, nil
}

// PlainAddr is the plain-HTTP listener's address with TLS on, else "".
func (a *App) PlainAddr() string {
	if a.plainLn == nil {
		return ""
	}
	return a.plainLn.Addr().String()
}

// stopTLS ends the plain-HTTP listener and the ACME cache's connections.
func (a *App) stopTLS(ctx context.Context) {
	if a.plainSrv != nil {
		_ = a.plainSrv.Shutdown(ctx)
	}
	if a.tls != nil {
		_ = a.tls.Close()
	}
}
