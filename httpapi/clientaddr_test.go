package httpapi

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestClientAddr(t *testing.T) {
	trusted, err := ParseProxies([]string{"10.0.0.0/8", "192.168.1.5", " "})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"untrusted peer, its XFF ignored", "203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7"},
		{"trusted peer without XFF", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"trusted peer, client entry", "10.1.2.3:5000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"client-forged left entries skipped", "10.1.2.3:5000", []string{"6.6.6.6, 198.51.100.9"}, "198.51.100.9"},
		{"chain of trusted proxies", "192.168.1.5:80", []string{"198.51.100.9, 10.9.9.9"}, "198.51.100.9"},
		{"several header lines", "10.1.2.3:5000", []string{"6.6.6.6", "198.51.100.9:4444"}, "198.51.100.9"},
		{"garbage stops at the last vouched hop", "10.1.2.3:5000", []string{"198.51.100.9, bogus"}, "10.1.2.3"},
		{"only trusted hops", "10.1.2.3:5000", []string{"10.4.4.4"}, "10.4.4.4"},
		{"IPv4-mapped peer", "[::ffff:203.0.113.7]:5000", nil, "203.0.113.7"},
		{"IPv6 peer", "[2001:db8::1]:443", []string{"1.2.3.4"}, "2001:db8::1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientAddr(r, trusted); got.String() != tc.want {
				t.Fatalf("ClientAddr = %v, want %s", got, tc.want)
			}
		})
	}
	if _, err := ParseProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("ParseProxies accepted a bad CIDR")
	}
	if _, err := ParseProxies([]string{"gateway"}); err == nil {
		t.Fatal("ParseProxies accepted a host name")
	}
}

func TestAddrKey(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "[2001:db8:1:2:aaaa::1]:443"
	a := ClientAddr(r, nil)
	r.RemoteAddr = "[2001:db8:1:2:bbbb::9]:443"
	b := ClientAddr(r, nil)
	if AddrKey(a) != AddrKey(b) || AddrKey(a) != "2001:db8:1:2::/64" {
		t.Fatalf("one /64 gives keys %q and %q", AddrKey(a), AddrKey(b))
	}
	r.RemoteAddr = "127.0.0.2:1"
	if k := AddrKey(ClientAddr(r, nil)); k != "127.0.0.2" {
		t.Fatalf("IPv4 key %q", k)
	}
	r.RemoteAddr = "pipe"
	if k := AddrKey(ClientAddr(r, nil)); k != "unknown" {
		t.Fatalf("no address: key %q", k)
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiterPer(3, time.Hour, 100)
	now := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := l.Allow("a", now); !ok {
			t.Fatalf("request %d refused within the burst", i+1)
		}
	}
	ok, wait := l.Allow("a", now)
	if ok || wait != 20*time.Minute {
		t.Fatalf("4th: ok=%v wait=%v, want refused for 20m (3 per hour)", ok, wait)
	}
	if ok, _ := l.Allow("b", now); !ok {
		t.Fatal("another key was refused")
	}
	if ok, _ := l.Allow("a", now.Add(20*time.Minute)); !ok {
		t.Fatal("refused after the refill")
	}
	l.Refund("a")
	if ok, _ := l.Allow("a", now.Add(20*time.Minute)); !ok {
		t.Fatal("a refunded token was not given back")
	}
	e := RateLimited(0, "slow down")
	if e.Status != 429 || e.Code != CodeRateLimited || e.RetryAfter != time.Second {
		t.Fatalf("RateLimited = %+v", e)
	}
}

func TestLimiterBounded(t *testing.T) {
	l := NewLimiter(1, 1, 64)
	now := time.Unix(1000, 0)
	for i := range 1000 {
		l.Allow(string(rune('a'+i%26))+string(rune(i)), now)
	}
	if n := len(l.buckets); n > 64 {
		t.Fatalf("%d buckets kept, bound 64", n)
	}
}
