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

// TestHelloCarriesMaxAttachmentBytes: clients learn the upload limit from
// hello, so the UI refuses a larger file before sending a byte.
func TestHelloCarriesMaxAttachmentBytes(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxAttachmentBytes = 5000; c.UploadQuotaBytes = 10000 })
	a := e.dial(e.user("alice"))
	if got := a.hello.num("max_attachment_bytes"); got != 5000 {
		t.Errorf("hello max_attachment_bytes = %v, want 5000", a.hello["max_attachment_bytes"])
	}
}
