package chat

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/push"
)

// pushService stands in for a browser vendor's push service on loopback
// (RFC 8030): it checks every push's VAPID authorization (RFC 8292: the
// JWT's signature with the key in k, aud, exp, sub) and decrypts its
// aes128gcm payload (RFC 8291) with the private key of the subscription it
// is addressed to, as the browser would. A push that fails a check is a
// test error and is answered 400.
type pushService struct {
	t       testing.TB
	srv     *httptest.Server
	key     string // the VAPID public key pushes must carry
	subject string // the JWT sub they must carry

	mu     sync.Mutex
	subs   map[string]*browserSub // by id (the endpoint's last segment)
	counts map[string]int         // requests per subscription
	// answer picks the status of the n-th request (from 1) to subscription id;
	// nil: 201.
	answer func(id string, n int) int
	// block, when set, holds every request until it is closed (a dead
	// service that accepts connections and never answers).
	block chan struct{}

	got chan receivedPush
}

// browserSub is the browser's side of a subscription: its keys.
type browserSub struct {
	id, endpoint string
	priv         *ecdh.PrivateKey
	auth         []byte
}

// receivedPush is a push the service accepted, decrypted.
type receivedPush struct {
	sub     string // browserSub.id
	payload push.Payload
	raw     string
	topic   string
	urgency string
	ttl     string
}

func newPushService(t testing.TB, vapidPublicKey, subject string) *pushService {
	ps := &pushService{t: t, key: vapidPublicKey, subject: subject,
		subs: map[string]*browserSub{}, counts: map[string]int{}, got: make(chan receivedPush, 1000)}
	ps.srv = httptest.NewServer(http.HandlerFunc(ps.handle))
	t.Cleanup(func() {
		ps.mu.Lock()
		if ps.block != nil {
			select {
			case <-ps.block:
			default:
				close(ps.block)
			}
		}
		ps.mu.Unlock()
		ps.srv.CloseClientConnections()
		ps.srv.Close()
	})
	return ps
}

// newSub makes a browser subscription's keys and endpoint.
func (ps *pushService) newSub(id string) *browserSub {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		ps.t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	b := &browserSub{id: id, endpoint: ps.srv.URL + "/push/" + id, priv: priv, auth: auth}
	ps.mu.Lock()
	ps.subs[id] = b
	ps.mu.Unlock()
	return b
}

// body is the JSON of POST /api/push/subscriptions for b, as a browser's
// PushSubscription.toJSON() gives it.
func (b *browserSub) body() map[string]any {
	enc := base64.RawURLEncoding.EncodeToString
	return map[string]any{"endpoint": b.endpoint, "keys": map[string]string{"p256dh": enc(b.priv.PublicKey().Bytes()), "auth": enc(b.auth)}}
}

// subscribe registers a fresh subscription of u through the REST API.
func (ps *pushService) subscribe(e *testEnv, u *testUser, id string) *browserSub {
	ps.t.Helper()
	b := ps.newSub(id)
	if st := e.call(u.token, "POST", "/api/push/subscriptions", b.body(), nil); st != http.StatusCreated {
		ps.t.Fatalf("subscribe %s: status %d, want 201", u.name, st)
	}
	return b
}

// next returns the next push accepted for subscription id, skipping none
// (a push for another subscription first is a test failure).
func (ps *pushService) next(id string) receivedPush {
	ps.t.Helper()
	select {
	case p := <-ps.got:
		if p.sub != id {
			ps.t.Fatalf("push for %s (%s), want one for %s", p.sub, p.raw, id)
		}
		return p
	case <-time.After(waitTimeout):
		ps.t.Fatalf("no push for %s within %s", id, waitTimeout)
	}
	return receivedPush{}
}

// none checks that no push arrived (call it after a push that was queued
// later arrived: the test's sender has one worker, so order holds).
func (ps *pushService) none() {
	ps.t.Helper()
	select {
	case p := <-ps.got:
		ps.t.Fatalf("unexpected push for %s: %s", p.sub, p.raw)
	default:
	}
}

func (ps *pushService) handle(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/push/")
	ps.mu.Lock()
	b := ps.subs[id]
	ps.counts[id]++
	n := ps.counts[id]
	answer, block := ps.answer, ps.block
	ps.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
		}
		return
	}
	if b == nil || r.Method != http.MethodPost {
		ps.t.Errorf("push service: %s %s: no such subscription", r.Method, r.URL.Path)
		http.Error(w, "no such subscription", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<10))
	if err == nil {
		err = ps.checkVAPID(r.Header.Get("Authorization"))
	}
	var plain []byte
	if err == nil {
		if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
			err = fmt.Errorf("Content-Encoding %q, want aes128gcm", ce)
		} else {
			plain, err = decryptAES128GCM(b, body)
		}
	}
	var p push.Payload
	if err == nil {
		err = json.Unmarshal(plain, &p)
	}
	if err != nil {
		ps.t.Errorf("push service: push to %s: %v", id, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	status := http.StatusCreated
	if answer != nil {
		status = answer(id, n)
	}
	if status == http.StatusCreated {
		ps.got <- receivedPush{sub: id, payload: p, raw: string(plain), topic: r.Header.Get("Topic"),
			urgency: r.Header.Get("Urgency"), ttl: r.Header.Get("TTL")}
	}
	w.WriteHeader(status)
}

// checkVAPID checks an Authorization header "vapid t=JWT, k=KEY" (RFC 8292 §3).
func (ps *pushService) checkVAPID(h string) error {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return fmt.Errorf("authorization %q is not vapid", h)
	}
	var tok, k string
	for _, part := range strings.Split(rest, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch name {
		case "t":
			tok = val
		case "k":
			k = val
		}
	}
	if k != ps.key {
		return fmt.Errorf("k=%q, want the server's VAPID public key %q", k, ps.key)
	}
	raw, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return fmt.Errorf("k: %w", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return fmt.Errorf("k: %w", err)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(ps.srv.URL), jwt.WithExpirationRequired())
	if err != nil {
		return fmt.Errorf("VAPID JWT: %w", err)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp.After(time.Now().Add(24*time.Hour)) {
		return fmt.Errorf("VAPID JWT exp %v is more than 24 h ahead (RFC 8292 §2)", exp)
	}
	if sub, _ := claims["sub"].(string); sub != ps.subject {
		return fmt.Errorf("VAPID JWT sub %q, want %q", sub, ps.subject)
	}
	return nil
}

// decryptAES128GCM decrypts a Web Push message (RFC 8291 §3.4, on RFC
// 8188's aes128gcm: salt, record size, key id = the sender's ephemeral
// public key, then one record) with the subscription's keys.
func decryptAES128GCM(b *browserSub, body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("body shorter than the aes128gcm header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen {
		return nil, errors.New("body shorter than its key id")
	}
	asPublic, record := body[21:21+idlen], body[21+idlen:]
	if rs < 18 || len(record) > int(rs) {
		return nil, fmt.Errorf("one record of at most rs=%d bytes expected, got %d", rs, len(record))
	}
	asKey, err := ecdh.P256().NewPublicKey(asPublic)
	if err != nil {
		return nil, fmt.Errorf("key id is not a P-256 point: %w", err)
	}
	secret, err := b.priv.ECDH(asKey)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), b.priv.PublicKey().Bytes()...), asPublic...)
	ikm, err := hkdf.Key(sha256.New, secret, b.auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	// The last record's padding: zeros after a 0x02 delimiter (RFC 8188 §2).
	end := bytes.LastIndexFunc(plain, func(r rune) bool { return r != 0 })
	if end < 0 || plain[end] != 2 {
		return nil, errors.New("no 0x02 delimiter ending the last record")
	}
	return plain[:end], nil
}

// waitSubs waits until u has n push subscriptions in the store.
func waitSubs(t testing.TB, e *testEnv, u *testUser, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%s to have %d push subscriptions", u.name, n), func() bool {
		subs, err := e.st.PushSubscriptions(context.Background(), u.id)
		return err == nil && len(subs) == n
	})
}
