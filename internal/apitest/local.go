package apitest

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// BindLocal makes u's requests and WebSockets leave from the loopback
// address ip (127.0.0.2, 127.0.0.3, …), so that per-address limits see each
// test user as a client of its own.
func (u *User) BindLocal(ip string) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	u.HTTP.Transport = &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
	}
}

// SignUpFrom creates the account name with password, its requests
// leaving from ip (see BindLocal).
func SignUpFrom(t testing.TB, base, name, password, ip string) *User {
	t.Helper()
	u := NewUser(t, base)
	u.BindLocal(ip)
	u.Username, u.Password = name, password
	r := u.Do("POST", "/auth/signup", map[string]string{"username": u.Username, "password": u.Password})
	if r.Status != http.StatusCreated {
		t.Fatalf("/auth/signup %s: %d %s", name, r.Status, r.Body)
	}
	var out struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	r.JSON(t, &out)
	u.ID = out.User.ID
	return u
}
