package chat

import "testing"

// TestHelloCarriesMaxTextBytes: clients learn the text limit from hello.
func TestHelloCarriesMaxTextBytes(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxTextBytes = 1000 })
	a := e.dial(e.user("alice"))
	if got := a.hello.num("max_text_bytes"); got != 1000 {
		t.Errorf("hello max_text_bytes = %v, want 1000", a.hello["max_text_bytes"])
	}
}
