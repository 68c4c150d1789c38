package auth

import (
	"regexp"
	"strings"
	"testing"
)

// testArgon2 keeps tests fast; one test below uses the real defaults.
var testArgon2 = Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestPasswordHashDefaults(t *testing.T) {
	p := DefaultConfig().Argon2
	h := HashPassword("correct horse battery staple", p)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || !phcRE.MatchString(h) {
		t.Fatalf("hash %q is not the expected PHC string", h)
	}
	if ok, err := VerifyPassword("correct horse battery staple", h); err != nil || !ok {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, err := VerifyPassword("correct horse battery stapler", h); err != nil || ok {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
}

func TestPasswordHashCarriesItsParameters(t *testing.T) {
	h := HashPassword("pässwörd ✓", testArgon2)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash = %q", h)
	}
	// Verification uses the parameters in the hash, not the current config.
	if ok, err := VerifyPassword("pässwörd ✓", h); err != nil || !ok {
		t.Fatalf("verify: %v %v", ok, err)
	}
	if h2 := HashPassword("pässwörd ✓", testArgon2); h2 == h {
		t.Error("two hashes of one password are equal: salt not random")
	}
	for _, bad := range []string{
		"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		if _, err := VerifyPassword("x", bad); err == nil {
			t.Errorf("malformed hash %q accepted", bad)
		}
	}
}

func BenchmarkVerifyPasswordDefaults(b *testing.B) {
	h := HashPassword("correct horse battery staple", DefaultConfig().Argon2)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := VerifyPassword("correct horse battery staple", h); !ok {
			b.Fatal("mismatch")
		}
	}
}
