package app

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, err := LoadConfig(flags(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":8080" || cfg.DataDir != "./data" || strings.Join(cfg.Roles, ",") != "all" {
		t.Fatalf("defaults: addr %q data %q roles %v", cfg.HTTP.Addr, cfg.DataDir, cfg.Roles)
	}
	if cfg.Store.Backend != "sqlite" || cfg.PubSub.Backend != "memory" {
		t.Fatalf("backends: %q %q", cfg.Store.Backend, cfg.PubSub.Backend)
	}
	if cfg.Store.SQLitePath != filepath.Join("data", "chatd.db") || cfg.Auth.KeyFile != filepath.Join("data", "signing.key") {
		t.Fatalf("derived paths: %q %q", cfg.Store.SQLitePath, cfg.Auth.KeyFile)
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	file := filepath.Join(dir, "custom.yaml")
	if err := os.WriteFile(file, []byte("http:\n  addr: \":7000\"\nlog:\n  level: debug\n  format: json\nchat:\n  max_text_bytes: 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHATD_HTTP_ADDR", ":7100") // env beats the file
	t.Setenv("CHATD_LOG_FORMAT", "text") // env beats the file
	cfg, err := LoadConfig(flags(t, "--http-addr", ":7200"), file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":7200" {
		t.Errorf("flag must win: addr %q", cfg.HTTP.Addr)
	}
	if cfg.Log.Format != "text" || cfg.Log.Level != "debug" {
		t.Errorf("env over file: %+v", cfg.Log)
	}
	if cfg.Chat.MaxTextBytes != 1000 {
		t.Errorf("file value lost: %d", cfg.Chat.MaxTextBytes)
	}
	// An env-only key that no file mentions is still seen (viper#761).
	t.Setenv("CHATD_STORE_MONGO_DATABASE", "other")
	cfg, err = LoadConfig(flags(t), file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.MongoDatabase != "other" {
		t.Errorf("env-only value lost: %q", cfg.Store.MongoDatabase)
	}
}

func TestLoadConfigErrorsNameTheKey(t *testing.T) {
	t.Chdir(t.TempDir())
	cases := []struct {
		args []string
		env  map[string]string
		key  string
	}{
		{args: []string{"--role", "chef"}, key: "roles"},
		{args: []string{"--log-level", "loud"}, key: "log.level"},
		{env: map[string]string{"CHATD_HTTP_SHUTDOWN_TIMEOUT": "soon"}, key: "shutdown_timeout"},
		{args: []string{"--role", "chat"}, key: "store.backend"},
		{args: []string{"--role", "chat"}, env: map[string]string{"CHATD_STORE_BACKEND": "mongo", "CHATD_STORE_MONGO_URI": "mongodb://x"}, key: "pubsub.backend"},
		{args: []string{"--role", "chat"}, env: map[string]string{"CHATD_STORE_BACKEND": "mongo", "CHATD_STORE_MONGO_URI": "mongodb://x", "CHATD_PUBSUB_BACKEND": "redis", "CHATD_PUBSUB_REDIS_URL": "redis://x"}, key: "keys.jwks_url"},
		{args: []string{"--role", "gateway"}, env: map[string]string{"CHATD_KEYS_JWKS_URL": "http://a/auth/jwks"}, key: "gateway.auth_upstreams"},
		{env: map[string]string{"CHATD_STORE_BACKEND": "postgres"}, key: "store.backend"},
		{env: map[string]string{"CHATD_HTTP_PUBLIC_ORIGINS": "chat.example.com"}, key: "http.public_origins"},
		{env: map[string]string{"CHATD_PUBSUB_PRESENCE_TTL": "1s"}, key: "pubsub.presence_ttl"},
		{env: map[string]string{"CHATD_HTTP_OPS_ADDR": "9090"}, key: "http.ops_addr"},
		{env: map[string]string{"CHATD_HTTP_OPS_ADDR": ":8080"}, key: "http.ops_addr"},
		{env: map[string]string{"CHATD_PUBSUB_PRESENCE_TTL": "1h"}, key: "pubsub.presence_ttl"},
	}
	for _, c := range cases {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		_, err := LoadConfig(flags(t, c.args...), "")
		if err == nil || !strings.Contains(err.Error(), c.key) || strings.Contains(err.Error(), "\n") {
			t.Errorf("args %v env %v: want one line naming %q, got %v", c.args, c.env, c.key, err)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}

func TestConfigFileUnknownKeyRefused(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("config.yaml", []byte("http:\n  adress: \":1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(flags(t), "")
	if err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("want an error naming the unknown key, got %v", err)
	}
}

// TestConfigYAMLListsTheDefaults keeps config.yaml honest: loading it gives
// exactly DefaultConfig, and it names every key.
func TestConfigYAMLListsTheDefaults(t *testing.T) {
	file, err := filepath.Abs("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	fromFile, err := LoadConfig(flags(t), file)
	if err != nil {
		t.Fatal(err)
	}
	defaults := DefaultConfig()
	if err := defaults.Validate(); err != nil {
		t.Fatal(err)
	}
	// Compared as printed: an empty list from YAML and a nil one are the same setting.
	if fmt.Sprintf("%+v", fromFile) != fmt.Sprintf("%+v", defaults) {
		t.Fatalf("config.yaml differs from DefaultConfig:\n file     %+v\n defaults %+v", fromFile, defaults)
	}
	v := viper.New()
	v.SetConfigFile(file)
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	want := viper.New()
	registerDefaults(want, "", reflect.ValueOf(DefaultConfig()))
	for _, k := range want.AllKeys() {
		if !v.InConfig(k) {
			t.Errorf("config.yaml does not list %s", k)
		}
	}
}
