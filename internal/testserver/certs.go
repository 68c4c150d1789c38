package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// CA is a certificate authority made for one test, with PEM files in a
// temporary directory: a server certificate for 127.0.0.1 and localhost, a
// client certificate, and another CA that signed neither (a server must
// not be trusted with it).
type CA struct {
	CAFile                string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	OtherCAFile           string
	key                   *ecdsa.PrivateKey
	cert                  *x509.Certificate
}

// NewCA makes a CA and its certificates (ECDSA P-256, valid for an hour).
func NewCA(tb testing.TB) CA {
	tb.Helper()
	dir := tb.TempDir()
	caKey, caCert, caDER := makeCA(tb, "chatd test CA")
	_, _, otherDER := makeCA(tb, "another CA")
	c := CA{
		CAFile:      writePEM(tb, dir, "ca.pem", "CERTIFICATE", caDER),
		OtherCAFile: writePEM(tb, dir, "other-ca.pem", "CERTIFICATE", otherDER),
		key:         caKey,
		cert:        caCert,
	}
	c.ServerCert, c.ServerKey = makeLeaf(tb, dir, "server", caKey, caCert, x509.ExtKeyUsageServerAuth)
	c.ClientCert, c.ClientKey = makeLeaf(tb, dir, "client", caKey, caCert, x509.ExtKeyUsageClientAuth)
	return c
}

// Reissue replaces ServerCert and ServerKey, each by a rename as a
// certificate tool would, with a new server certificate of the CA, and
// returns the new certificate's serial. With keepKey the key file is left
// alone, so the pair no longer matches.
func (c CA) Reissue(tb testing.TB, keepKey bool) string {
	tb.Helper()
	certFile, keyFile := makeLeaf(tb, tb.TempDir(), "server", c.key, c.cert, x509.ExtKeyUsageServerAuth)
	if !keepKey {
		if err := os.Rename(keyFile, c.ServerKey); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(certFile, c.ServerCert); err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return cert.SerialNumber.String()
}

func makeCA(tb testing.TB, name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key, cert, der
}

func makeLeaf(tb testing.TB, dir, name string, caKey *ecdsa.PrivateKey, ca *x509.Certificate, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return writePEM(tb, dir, name+".pem", "CERTIFICATE", der), writePEM(tb, dir, name+"-key.pem", "PRIVATE KEY", kd)
}

func writePEM(tb testing.TB, dir, name, typ string, der []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// TLSRelay accepts TLS connections on a free 127.0.0.1 port with the CA's
// server certificate and relays each, decrypted, to target: a TLS front for
// a server that speaks only plain TCP (the MongoDB-wire test server). It
// returns the relay's address and closes it at tb's cleanup.
func TLSRelay(tb testing.TB, ca CA, target string) string {
	tb.Helper()
	cert, err := tls.LoadX509KeyPair(ca.ServerCert, ca.ServerKey)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				b, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(b, c); _ = b.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, b)
			})
		}
	})
	return ln.Addr().String()
}
