package app

import (
	"slices"
	"strings"
	"testing"
)

// TestRolesAreGroupings: all is only a grouping, so listing its roles runs
// exactly the same modules, and a split gateway runs the proxy in front of
// the UI.
func TestRolesAreGroupings(t *testing.T) {
	modulesOf := func(roles ...string) []string {
		var out []string
		for _, m := range resolve(roles) {
			if modules[m].init != nil {
				out = append(out, m)
			}
		}
		return out
	}
	all := modulesOf(RoleAll)
	if listed := modulesOf(RoleAuth, RoleChat, RoleGateway); !slices.Equal(all, listed) {
		t.Errorf("auth,chat,gateway runs %v, all runs %v", listed, all)
	}
	if slices.Contains(all, modProxy) || !slices.Contains(all, modUI) {
		t.Errorf("all runs %v: want the UI and no proxy", all)
	}
	if gw := modulesOf(RoleGateway); !slices.Equal(gw, []string{modUI, modVerifier, modProxy}) {
		t.Errorf("gateway runs %v", gw)
	}
	if c := modulesOf(RoleChat); !slices.Equal(c, []string{modStore, modPubSub, modVerifier, modPush, RoleChat}) {
		t.Errorf("chat runs %v", c)
	}
	// The verifier uses the local key when the auth role runs here, so it
	// is ordered after it.
	both := modulesOf(RoleChat, RoleAuth)
	if slices.Index(both, modSigningKey) > slices.Index(both, modVerifier) {
		t.Errorf("chat,auth runs %v: the signing key must come before the verifier", both)
	}
}

func TestValidateFollowsTheModules(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Roles = []string{"auth,chat,gateway"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("auth,chat,gateway with the in-process backends: %v", err)
	}
	for _, c := range []struct {
		roles, key string
	}{
		{"gateway,auth", "store.backend"},
		{"auth", "pubsub.backend"},
	} {
		cfg := DefaultConfig()
		cfg.Roles = []string{c.roles}
		if c.key == "pubsub.backend" {
			cfg.Store.Backend, cfg.Store.MongoURI = "mongo", "mongodb://x"
		}
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.key) {
			t.Errorf("roles %s: want an error about %s, got %v", c.roles, c.key, err)
		}
	}
	// A gateway beside only one of the roles it proxies is refused.
	cfg = DefaultConfig()
	cfg.Roles = []string{"gateway,chat"}
	cfg.Store.Backend, cfg.Store.MongoURI = "mongo", "mongodb://x"
	cfg.PubSub.Backend, cfg.PubSub.RedisURL = "redis", "redis://x"
	cfg.Keys.JWKSURL = "http://auth/auth/jwks"
	if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "roles:") {
		t.Errorf("gateway,chat: want a roles error, got %v", err)
	}
	// A gateway alone needs no store: data_dir is not required.
	cfg = DefaultConfig()
	cfg.Roles = []string{RoleGateway}
	cfg.DataDir = ""
	cfg.Keys.JWKSURL = "http://auth/auth/jwks"
	cfg.Gateway.AuthUpstreams = []string{"http://auth:8080"}
	cfg.Gateway.ChatUpstreams = []string{"http://chat:8080"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("gateway alone: %v", err)
	}
}
