// Command pebbleserver runs Pebble, Let's Encrypt's ACME test server
// (github.com/letsencrypt/pebble/v2), on free loopback ports for chatd's TLS
// tests, with a DNS server that answers 127.0.0.1 for every name so that
// Pebble's real HTTP-01 and TLS-ALPN-01 validation reaches the chatd under
// test on -http-port and -tls-port. It lives in its own Go module so that
// Pebble and its dependencies never enter chatd's go.mod.
//
// It writes the PEM certificate of its own HTTPS listeners (ACME API and
// management) to -dir/pebble-api.pem, then prints one line,
//
//	PEBBLE directory=https://127.0.0.1:P/dir management=https://127.0.0.1:Q api_ca_file=DIR/pebble-api.pem
//
// and serves until SIGINT/SIGTERM or until its standard input is closed.
// The root of the certificates it issues is at management/roots/0.
// Validation runs at once (PEBBLE_VA_NOSLEEP) and no nonce is rejected at
// random (PEBBLE_WFE_NONCEREJECT=0), to keep tests short; validation itself
// is never skipped.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pebbleserver:", err)
		os.Exit(1)
	}
}

func run() error {
	httpPort := flag.Int("http-port", 80, "port Pebble validates HTTP-01 challenges on (at 127.0.0.1)")
	tlsPort := flag.Int("tls-port", 443, "port Pebble validates TLS-ALPN-01 challenges on (at 127.0.0.1)")
	validity := flag.Duration("validity", 90*24*time.Hour, "lifetime of the certificates it issues")
	dir := flag.String("dir", "", "directory for pebble-api.pem (required)")
	watchStdin := flag.Bool("watch-stdin", true, "stop when standard input is closed")
	flag.Parse()
	if *dir == "" {
		return fmt.Errorf("-dir is required")
	}
	// Read by va.New and wfe.New.
	_ = os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	_ = os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")

	logger := log.New(os.Stderr, "pebble ", log.LstdFlags)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}

	dnsAddr, stopDNS, err := serveDNS()
	if err != nil {
		return err
	}
	defer stopDNS()

	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "chatd tests", ValidityPeriod: uint64(validity.Seconds())}}
	certAuthority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	validator := va.New(logger, *httpPort, *tlsPort, false, dnsAddr, store)
	frontEnd := wfe.New(logger, store, validator, certAuthority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	cert, certPEM, err := apiCertificate()
	if err != nil {
		return err
	}
	caFile := filepath.Join(*dir, "pebble-api.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		return err
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	apiURL, stopAPI, err := serveTLS(frontEnd.Handler(), tlsCfg, logger)
	if err != nil {
		return err
	}
	defer stopAPI()
	mgmtURL, stopMgmt, err := serveTLS(frontEnd.ManagementHandler(), tlsCfg, logger)
	if err != nil {
		return err
	}
	defer stopMgmt()

	fmt.Printf("PEBBLE directory=%s%s management=%s api_ca_file=%s\n", apiURL, wfe.DirectoryPath, mgmtURL, caFile)
	<-ctx.Done()
	return nil
}

// serveDNS answers every A question with 127.0.0.1 and every other
// question with no record, over TCP (which Pebble's resolver uses) and UDP
// on one free loopback port.
func serveDNS() (addr string, stop func(), err error) {
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		_ = ln.Close()
		return "", nil, err
	}
	tcpSrv := &dns.Server{Listener: ln, Handler: handler}
	udpSrv := &dns.Server{PacketConn: pc, Handler: handler}
	go func() { _ = tcpSrv.ActivateAndServe() }()
	go func() { _ = udpSrv.ActivateAndServe() }()
	return ln.Addr().String(), func() { _ = tcpSrv.Shutdown(); _ = udpSrv.Shutdown() }, nil
}

// apiCertificate is a self-signed certificate for 127.0.0.1 and localhost.
func apiCertificate() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "pebbleserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func serveTLS(h http.Handler, cfg *tls.Config, logger *log.Logger) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second, ErrorLog: logger}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return "https://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}
