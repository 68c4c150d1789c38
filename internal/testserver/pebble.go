package testserver

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Pebble is Let's Encrypt's ACME test server (the pebbleserver helper
// module), owned by one test. Its DNS answers 127.0.0.1 for every name, so
// it validates HTTP-01 at 127.0.0.1:HTTPPort and TLS-ALPN-01 at
// 127.0.0.1:TLSPort, for real.
type Pebble struct {
	// DirectoryURL is the ACME directory (tls.acme_ca_url).
	DirectoryURL string
	// APICAFile is the PEM certificate of Pebble's own HTTPS listeners
	// (tls.acme_ca_root_file).
	APICAFile string
	// ManagementURL serves /roots/0, the root of the issued certificates.
	ManagementURL string
	log           *lockedBuffer
}

// Log returns what Pebble logged so far (its validation attempts).
func (p *Pebble) Log() string { return p.log.String() }

// PebbleOptions are the ports Pebble validates on and the lifetime of the
// certificates it issues (0: 90 days).
type PebbleOptions struct {
	HTTPPort, TLSPort int
	Validity          time.Duration
}

// StartPebble builds the pebbleserver module once per test process (cached
// beside ferretdbserver; scripts/testdeps.sh builds it ahead) and starts
// it until the end of t. Without a Go toolchain or the module proxy the
// test is skipped, or fails when CI is set.
func StartPebble(t testing.TB, opt PebbleOptions) *Pebble {
	t.Helper()
	pebbleBin.once.Do(func() { pebbleBin.path, pebbleBin.err = buildHelper("pebbleserver") })
	if pebbleBin.err != nil {
		missing(t, fmt.Sprintf("testserver: no Pebble: %v\nbuild it with scripts/testdeps.sh", pebbleBin.err))
	}
	if opt.Validity == 0 {
		opt.Validity = 90 * 24 * time.Hour
	}
	cmd := exec.Command(pebbleBin.path, "-dir", t.TempDir(),
		"-http-port", strconv.Itoa(opt.HTTPPort), "-tls-port", strconv.Itoa(opt.TLSPort), "-validity", opt.Validity.String())
	stdin, err := cmd.StdinPipe() // closing it stops the server
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testserver: start pebbleserver: %v", err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r)
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("pebble's log:\n%s", stderr.String())
		}
	})
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatalf("testserver: pebbleserver printed nothing in 30 s; stderr: %s", stderr.String())
	}
	p := &Pebble{log: &stderr}
	for _, f := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "PEBBLE ")) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "directory":
			p.DirectoryURL = v
		case "management":
			p.ManagementURL = v
		case "api_ca_file":
			p.APICAFile = v
		}
	}
	if p.DirectoryURL == "" || p.ManagementURL == "" || p.APICAFile == "" {
		t.Fatalf("testserver: pebbleserver's first line %q; stderr: %s", line, stderr.String())
	}
	return p
}

var pebbleBin struct {
	once sync.Once
	path string
	err  error
}

// IssuerRoots returns a pool with the root that Pebble's certificates
// chain to, fetched from its management endpoint.
func (p *Pebble) IssuerRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(p.APICAFile)
	if err != nil {
		t.Fatal(err)
	}
	api := x509.NewCertPool()
	api.AppendCertsFromPEM(b)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: api}}}
	resp, err := client.Get(p.ManagementURL + "/roots/0")
	if err != nil {
		t.Fatalf("pebble roots: %v", err)
	}
	defer resp.Body.Close()
	root, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pebble roots: %d %v", resp.StatusCode, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(root) {
		t.Fatalf("pebble roots: no PEM certificate in %q", root)
	}
	return pool
}
