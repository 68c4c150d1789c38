package app

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
)

func TestURLSecrets(t *testing.T) {
	for _, c := range []struct {
		url  string
		want []string
	}{
		{"redis://:hunter2@redis:6379/0", []string{"hunter2"}},
		{"rediss://chatd:p%40ss@redis:6380/0", []string{"p%40ss", "p@ss"}},
		{"redis://redis:6379/0", nil},
		{"mongodb://root:m0ngo@a:27017,b:27017/?replicaSet=rs0&authSource=admin", []string{"m0ngo"}},
		{"mongodb://h/?tls=true&tlsCertificateKeyFile=/k.pem&tlsCertificateKeyFilePassword=keypw", []string{"keypw"}},
		{"mongodb://user@h/?authMechanism=MONGODB-X509", nil},
	} {
		if got := urlSecrets(c.url); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: %q, want %q", c.url, got, c.want)
		}
	}
	base := errors.New("dial redis://:hunter2@redis:6379/0 failed")
	err := redact(base, urlSecrets("redis://:hunter2@redis:6379/0"))
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "REDACTED") || !errors.Is(err, base) {
		t.Errorf("redact: %v (is base: %v)", err, errors.Is(err, base))
	}
}

// A node whose backend URLs carry passwords that are wrong, or that point
// at a server that is not there, never shows them: not in its log lines
// (the retry WARNs) nor in the error Start returns.
func TestBackendPasswordsNeverLogged(t *testing.T) {
	const redisPW, mongoPW = "redis-pw-Zq81", "mongo-pw-Xk27"
	r := testserver.StartRedisWith(t, "--requirepass", "the-right-one")
	for name, set := range map[string]func(*Config){
		"redis wrong password": func(c *Config) {
			c.PubSub.Backend = "redis"
			c.PubSub.RedisURL = "redis://:" + redisPW + "@" + r.Addr() + "/0"
		},
		"redis malformed": func(c *Config) {
			c.PubSub.Backend = "redis"
			c.PubSub.RedisURL = "redis://:" + redisPW + "@" + r.Addr() + "x/0"
		},
		"mongo unreachable": func(c *Config) {
			c.Store.Backend = "mongo"
			c.Store.MongoURI = "mongodb://chatd:" + mongoPW + "@" + freeAddr(t) + "/?connectTimeoutMS=200&serverSelectionTimeoutMS=200"
		},
		"mongo malformed": func(c *Config) {
			c.Store.Backend = "mongo"
			c.Store.MongoURI = "mongodb://chatd:" + mongoPW + "%zz@" + freeAddr(t) + "/?serverSelectionTimeoutMS=200"
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.HTTP.Addr = "127.0.0.1:0"
			cfg.HTTP.OpsAddr = ""
			cfg.DataDir = t.TempDir()
			set(&cfg)
			logs := &logBuffer{}
			a, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			err = a.Start(ctx)
			if err == nil {
				_ = a.Shutdown(context.Background())
				t.Fatal("started with a bad backend")
			}
			all := logs.String() + "\n" + err.Error()
			for _, pw := range []string{redisPW, mongoPW} {
				if strings.Contains(all, pw) {
					t.Errorf("the password %s shows:\n%s", pw, all)
				}
			}
			if !strings.Contains(logs.String(), "module not started") && !strings.Contains(err.Error(), "start ") {
				t.Errorf("no trace of the failure:\n%s", all)
			}
			t.Logf("error: %v", err)
		})
	}
}
