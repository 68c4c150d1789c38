package app

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestOnePublicOriginsKey: http.public_origins reaches every role that
// checks Origin, and the keys it replaced are refused with a message that
// names it rather than ignored.
func TestOnePublicOriginsKey(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("CHATD_HTTP_PUBLIC_ORIGINS", "https://chat.example.com")
	cfg, err := LoadConfig(flags(t), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://chat.example.com"}
	if !slices.Equal(cfg.Auth.PublicOrigins, want) || !slices.Equal(cfg.Chat.PublicOrigins, want) {
		t.Fatalf("auth %v, chat %v, want %v", cfg.Auth.PublicOrigins, cfg.Chat.PublicOrigins, want)
	}
	os.Unsetenv("CHATD_HTTP_PUBLIC_ORIGINS")

	if err := os.WriteFile("config.yaml", []byte("chat:\n  public_origins: [https://chat.example.com]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(flags(t), ""); err == nil || !strings.Contains(err.Error(), "http.public_origins") {
		t.Errorf("chat.public_origins in the file: want an error naming http.public_origins, got %v", err)
	}
	if err := os.Remove("config.yaml"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHATD_AUTH_PUBLIC_ORIGINS", "https://chat.example.com")
	if _, err := LoadConfig(flags(t), ""); err == nil || !strings.Contains(err.Error(), "CHATD_HTTP_PUBLIC_ORIGINS") {
		t.Errorf("CHATD_AUTH_PUBLIC_ORIGINS: want an error naming CHATD_HTTP_PUBLIC_ORIGINS, got %v", err)
	}
}

// TestOneTrustedProxiesKey: http.trusted_proxies reaches the gateway too,
// and gateway.trusted_proxies, which it replaced, is refused naming it.
func TestOneTrustedProxiesKey(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("CHATD_HTTP_TRUSTED_PROXIES", "10.0.0.0/8")
	cfg, err := LoadConfig(flags(t), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8"}
	if !slices.Equal(cfg.Gateway.TrustedProxies, want) || !slices.Equal(cfg.Auth.TrustedProxies, want) || !slices.Equal(cfg.Chat.TrustedProxies, want) {
		t.Fatalf("gateway %v, auth %v, chat %v, want %v", cfg.Gateway.TrustedProxies, cfg.Auth.TrustedProxies, cfg.Chat.TrustedProxies, want)
	}
	os.Unsetenv("CHATD_HTTP_TRUSTED_PROXIES")
	t.Setenv("CHATD_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8")
	_, err = LoadConfig(flags(t), "")
	if err == nil || !strings.Contains(err.Error(), "CHATD_HTTP_TRUSTED_PROXIES") || strings.Contains(err.Error(), "\n") {
		t.Errorf("CHATD_GATEWAY_TRUSTED_PROXIES: want one line naming CHATD_HTTP_TRUSTED_PROXIES, got %v", err)
	}
}

// TestFlagsFromTheTable: every serve flag is defined with the default of
// its key and sets that key.
func TestFlagsFromTheTable(t *testing.T) {
	t.Chdir(t.TempDir())
	fs := flags(t)
	for _, f := range serveFlags {
		if fs.Lookup(f.name) == nil {
			t.Errorf("--%s not defined", f.name)
		}
	}
	if got := fs.Lookup("role").DefValue; got != RoleAll {
		t.Errorf("--role default %q", got)
	}
	cfg, err := LoadConfig(flags(t, "--role=auth,chat,gateway", "--node-id=n1", "--data-dir=d", "--log-format=json"), "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Roles, ",") != "auth,chat,gateway" || cfg.NodeID != "n1" || cfg.DataDir != "d" || cfg.Log.Format != "json" {
		t.Errorf("flags not applied: %+v", cfg)
	}
}
