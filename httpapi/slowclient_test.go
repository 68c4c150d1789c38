package httpapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const waitFor = 10 * time.Second

func TestBodyDeadlineCutsASlowBody(t *testing.T) {
	readErr := make(chan error, 1)
	h := BodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}), 200*time.Millisecond)
	srv := httptest.NewServer(h)
	defer srv.Close()

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Headers at once, then 10 of the 100 body bytes, then nothing.
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the handler read the whole body of a client that never sent it")
		}
	case <-time.After(waitFor):
		t.Fatal("a slow body was never cut")
	}
	// The connection is closed.
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("connection not closed cleanly: %v", err)
	}
}

func TestBodyDeadlineSparesAFastBodyAndLongHandlers(t *testing.T) {
	h := BodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		time.Sleep(400 * time.Millisecond) // longer than the deadline, after the body is read
		_, _ = w.Write(b)
	}), 200*time.Millisecond)
	srv := httptest.NewServer(h)
	defer srv.Close()
	for range 2 { // the same keep-alive connection twice
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != `{"a":1}` {
			t.Fatalf("got %q", b)
		}
	}
}

func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: waitFor}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", ip, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// served reports whether a GET on c is answered (false: the server closed it).
func served(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestLimitListenerCapsConnectionsPerAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedKeys := make(chan string, 10)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		ReadHeaderTimeout: time.Minute, // the slow connections below stay open for the test
	}
	go func() { _ = srv.Serve(LimitListener(ln, 0, 3, nil, func(k string) { refusedKeys <- k })) }()
	defer srv.Close()
	addr := ln.Addr().String()

	// Three slow connections from 127.0.0.2 hold its places (headers begun, never finished).
	for range 3 {
		c := dialFrom(t, "127.0.0.2", addr)
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	// A fourth from 127.0.0.2 is closed at accept.
	if served(t, dialFrom(t, "127.0.0.2", addr)) {
		t.Fatal("a fourth connection from 127.0.0.2 was served")
	}
	select {
	case k := <-refusedKeys:
		if k != "127.0.0.2" {
			t.Fatalf("refused %q, want 127.0.0.2", k)
		}
	case <-time.After(waitFor):
		t.Fatal("refusal not reported")
	}
	// Another address is served meanwhile.
	if !served(t, dialFrom(t, "127.0.0.3", addr)) {
		t.Fatal("127.0.0.3 was not served while 127.0.0.2 is at its cap")
	}
}

func TestLimitListenerCapsTotalAndFreesOnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(LimitListener(ln, 2, 0, nil, nil)) }()
	defer srv.Close()
	addr := ln.Addr().String()
	a := dialFrom(t, "127.0.0.2", addr)
	b := dialFrom(t, "127.0.0.3", addr)
	_, _ = io.WriteString(a, "GET / HTTP/1.1\r\n")
	_, _ = io.WriteString(b, "GET / HTTP/1.1\r\n")
	if served(t, dialFrom(t, "127.0.0.4", addr)) {
		t.Fatal("a third connection was served over a total cap of 2")
	}
	_ = a.Close()
	deadline := time.Now().Add(waitFor)
	for !served(t, dialFrom(t, "127.0.0.4", addr)) {
		if time.Now().After(deadline) {
			t.Fatal("a closed connection never freed its place")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
