package app

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chatd/chatd/auth"
	"github.com/chatd/chatd/chat"
	"github.com/chatd/chatd/gateway"
)

// Config is the whole configuration of one chatd process. Its mapstructure
// tags are the keys of config.yaml; CHATD_ + the key upper-cased with "."
// replaced by "_" is the environment variable (http.addr → CHATD_HTTP_ADDR).
type Config struct {
	Roles   []string       `mapstructure:"roles"`
	DataDir string         `mapstructure:"data_dir"`
	NodeID  string         `mapstructure:"node_id"`
	HTTP    HTTPConfig     `mapstructure:"http"`
	Log     LogConfig      `mapstructure:"log"`
	Keys    KeysConfig     `mapstructure:"keys"`
	Store   StoreConfig    `mapstructure:"store"`
	PubSub  PubSubConfig   `mapstructure:"pubsub"`
	Auth    auth.Config    `mapstructure:"auth"`
	Chat    chat.Config    `mapstructure:"chat"`
	Gateway gateway.Config `mapstructure:"gateway"`
}

// HTTPConfig is the listener shared by every role of the process.
type HTTPConfig struct {
	Addr              string        `mapstructure:"addr"`
	PublicOrigins     []string      `mapstructure:"public_origins"`
	TrustedProxies    []string      `mapstructure:"trusted_proxies"` // whose X-Forwarded-For names the client
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ShutdownTimeout   time.Duration `mapstructure:"shutdown_timeout"`
}

// LogConfig selects the slog handler.
type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // text or json
}

// KeysConfig says where token verification keys come from when the auth
// role does not run in this process.
type KeysConfig struct {
	JWKSURL    string        `mapstructure:"jwks_url"`
	MinRefetch time.Duration `mapstructure:"min_refetch"`
}

// StoreConfig selects the storage backend.
type StoreConfig struct {
	Backend       string `mapstructure:"backend"`        // sqlite or mongo
	SQLitePath    string `mapstructure:"sqlite_path"`    // default <data_dir>/chatd.db
	MongoURI      string `mapstructure:"mongo_uri"`      // mongodb://...
	MongoDatabase string `mapstructure:"mongo_database"` // default chatd
	MongoMajority bool   `mapstructure:"mongo_majority"` // write concern majority
}

// PubSubConfig selects the broker and presence backend.
type PubSubConfig struct {
	Backend       string        `mapstructure:"backend"` // memory or redis
	RedisURL      string        `mapstructure:"redis_url"`
	ChannelPrefix string        `mapstructure:"channel_prefix"`
	PresenceTTL   time.Duration `mapstructure:"presence_ttl"`
}

// Role names.
const (
	RoleAll     = "all"
	RoleAuth    = "auth"
	RoleChat    = "chat"
	RoleGateway = "gateway"
)

// DefaultConfig is the configuration of `chatd serve` with nothing set: one
// process running every role on :8080 with SQLite and the in-process broker.
func DefaultConfig() Config {
	return Config{
		Roles:   []string{RoleAll},
		DataDir: "./data",
		HTTP: HTTPConfig{
			Addr:              ":8080",
			PublicOrigins:     []string{},
			TrustedProxies:    []string{},
			ReadHeaderTimeout: 10 * time.Second,
			ShutdownTimeout:   15 * time.Second,
		},
		Log:     LogConfig{Level: "info", Format: "text"},
		Keys:    KeysConfig{MinRefetch: 30 * time.Second},
		Store:   StoreConfig{Backend: "sqlite", MongoDatabase: "chatd", MongoMajority: true},
		PubSub:  PubSubConfig{Backend: "memory", ChannelPrefix: "chatd:", PresenceTTL: 15 * time.Second},
		Auth:    auth.DefaultConfig(),
		Chat:    chat.DefaultConfig(),
		Gateway: gateway.DefaultConfig(),
	}
}

// has reports whether the process runs role (directly or through "all").
func (c Config) has(role string) bool {
	return slices.Contains(c.Roles, role) || slices.Contains(c.Roles, RoleAll)
}

// normalize expands derived defaults; Validate calls it first.
func (c *Config) normalize() {
	var roles []string
	for _, r := range c.Roles {
		for _, p := range strings.Split(r, ",") {
			if p = strings.ToLower(strings.TrimSpace(p)); p != "" && !slices.Contains(roles, p) {
				roles = append(roles, p)
			}
		}
	}
	c.Roles = roles
	if c.Store.SQLitePath == "" && c.DataDir != "" {
		c.Store.SQLitePath = filepath.Join(c.DataDir, "chatd.db")
	}
	if c.Auth.KeyFile == "" && c.DataDir != "" {
		c.Auth.KeyFile = filepath.Join(c.DataDir, "signing.key")
	}
	c.Auth.TrustedProxies = c.HTTP.TrustedProxies
	if len(c.HTTP.PublicOrigins) > 0 {
		c.Auth.PublicOrigins = c.HTTP.PublicOrigins
		c.Chat.PublicOrigins = c.HTTP.PublicOrigins
	}
}

// Validate normalizes c and reports the first bad setting, naming its key.
func (c *Config) Validate() error {
	c.normalize()
	if len(c.Roles) == 0 {
		return errors.New("roles: at least one role is required (all, auth, chat, gateway)")
	}
	for _, r := range c.Roles {
		switch r {
		case RoleAll, RoleAuth, RoleChat, RoleGateway:
		default:
			return fmt.Errorf("roles: unknown role %q (want all, auth, chat or gateway, or a comma list)", r)
		}
	}
	if c.HTTP.Addr == "" {
		return errors.New("http.addr: required (for example :8080)")
	}
	if c.DataDir == "" && (c.has(RoleAuth) || c.Store.Backend == "sqlite") {
		return errors.New("data_dir: required")
	}
	for _, o := range c.HTTP.PublicOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("http.public_origins: %q is not an origin like https://chat.example.com", o)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format: %q is not text or json", c.Log.Format)
	}

	// The in-process backends only work when one process runs every role
	// that needs them: a split deployment shares state through Mongo and Redis.
	local := c.has(RoleAuth) && c.has(RoleChat)
	needsStore := c.has(RoleAuth) || c.has(RoleChat)
	switch c.Store.Backend {
	case "sqlite":
		if needsStore && !local {
			return errors.New("store.backend: sqlite keeps data inside one process; a split role (auth or chat alone) needs store.backend=mongo")
		}
	case "mongo":
		if needsStore && c.Store.MongoURI == "" {
			return errors.New("store.mongo_uri: required with store.backend=mongo")
		}
		if needsStore && c.Store.MongoDatabase == "" {
			return errors.New("store.mongo_database: required with store.backend=mongo")
		}
	default:
		return fmt.Errorf("store.backend: %q is not sqlite or mongo", c.Store.Backend)
	}
	switch c.PubSub.Backend {
	case "memory":
		if needsStore && !local {
			return errors.New("pubsub.backend: memory links only the roles of one process; a split role (auth or chat alone) needs pubsub.backend=redis")
		}
	case "redis":
		if needsStore && c.PubSub.RedisURL == "" {
			return errors.New("pubsub.redis_url: required with pubsub.backend=redis")
		}
		if c.PubSub.PresenceTTL <= 0 {
			return errors.New("pubsub.presence_ttl: must be > 0")
		}
	default:
		return fmt.Errorf("pubsub.backend: %q is not memory or redis", c.PubSub.Backend)
	}
	if (c.has(RoleChat) || c.has(RoleGateway)) && !c.has(RoleAuth) && c.Keys.JWKSURL == "" {
		return errors.New("keys.jwks_url: required when chat or gateway runs without the auth role (for example http://auth:8080/auth/jwks)")
	}
	if c.has(RoleGateway) && !slices.Contains(c.Roles, RoleAll) {
		if c.has(RoleAuth) || c.has(RoleChat) {
			return errors.New("roles: gateway runs either alone or as part of all; list auth and chat upstreams instead")
		}
		if len(c.Gateway.AuthUpstreams) == 0 {
			return errors.New("gateway.auth_upstreams: required with role gateway")
		}
		if len(c.Gateway.ChatUpstreams) == 0 && c.Gateway.ChatDNS == "" {
			return errors.New("gateway.chat_upstreams (or gateway.chat_dns): required with role gateway")
		}
		if err := c.Gateway.Validate(); err != nil {
			return err
		}
	}
	if c.has(RoleAuth) {
		if err := c.Auth.Validate(); err != nil {
			return err
		}
	}
	if c.has(RoleChat) {
		if err := c.Chat.Validate(); err != nil {
			return err
		}
	}
	return nil
}
