package app

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chatd/chatd/auth"
	"github.com/chatd/chatd/chat"
	"github.com/chatd/chatd/gateway"
	"github.com/chatd/chatd/internal/tlsconf"
	"github.com/chatd/chatd/internal/tracing"
	"github.com/chatd/chatd/push"
)

// Config is the whole configuration of one chatd process. Its mapstructure
// tags are the keys of config.yaml; CHATD_ + the key upper-cased with "."
// replaced by "_" is the environment variable (http.addr → CHATD_HTTP_ADDR).
type Config struct {
	Roles   []string       `mapstructure:"roles"`
	DataDir string         `mapstructure:"data_dir"`
	NodeID  string         `mapstructure:"node_id"`
	HTTP    HTTPConfig     `mapstructure:"http"`
	TLS     tlsconf.Config `mapstructure:"tls"`
	Log     LogConfig      `mapstructure:"log"`
	Runtime RuntimeConfig  `mapstructure:"runtime"`
	Keys    KeysConfig     `mapstructure:"keys"`
	Store   StoreConfig    `mapstructure:"store"`
	PubSub  PubSubConfig   `mapstructure:"pubsub"`
	Auth    auth.Config    `mapstructure:"auth"`
	Chat    chat.Config    `mapstructure:"chat"`
	Gateway gateway.Config `mapstructure:"gateway"`
	Push    push.Config    `mapstructure:"push"`
	Tracing tracing.Config `mapstructure:"tracing"`

	// vapidKeyDefault: push.vapid_key_file was not set, normalize chose
	// <data_dir>/vapid.key.
	vapidKeyDefault bool
}

// HTTPConfig is the listener shared by every role of the process.
type HTTPConfig struct {
	Addr              string        `mapstructure:"addr"`
	PublicOrigins     []string      `mapstructure:"public_origins"`
	TrustedProxies    []string      `mapstructure:"trusted_proxies"` // whose X-Forwarded-For names the client
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	// BodyTimeout is how long a request has to deliver its whole body.
	BodyTimeout time.Duration `mapstructure:"body_timeout"`
	// MaxConns and MaxConnsPerAddr cap the open connections of the
	// listener, in all and per client address (trusted proxies exempt); 0 is off.
	MaxConns        int           `mapstructure:"max_conns"`
	MaxConnsPerAddr int           `mapstructure:"max_conns_per_addr"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// OpsAddr is the operations listener: /metrics, and /healthz and
	// /readyz again (those stay on Addr too, for load balancers). Loopback
	// by default, since metrics name internal upstreams; "" turns it off.
	OpsAddr string `mapstructure:"ops_addr"`
}

// RuntimeConfig tunes the Go runtime of the process.
type RuntimeConfig struct {
	// GCHeapFloorMB keeps the GC's heap goal at least this many MiB above
	// the live heap (internal/gcfloor), so that a node with a small heap
	// does not collect several times a second; 0 leaves GOGC's goal. A
	// GOGC environment variable wins; GOMEMLIMIT still caps the heap.
	GCHeapFloorMB int `mapstructure:"gc_heap_floor_mb"`
	// ExtraProcs raises GOMAXPROCS this many above the runtime's default
	// (the CPUs chatd may run on, or its cgroup CPU limit) in a process
	// that keeps the SQLite store, whose writer waits in fsync holding a
	// P (app/procs.go); 0 keeps the default. A GOMAXPROCS environment
	// variable wins.
	ExtraProcs int `mapstructure:"extra_procs"`
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
	// CAFile is a PEM file of the CA certificates an https:// jwks_url
	// chains to (an internal CA); empty means the system roots.
	CAFile string `mapstructure:"ca_file"`
}

// StoreConfig selects the storage backend.
type StoreConfig struct {
	Backend    string `mapstructure:"backend"`     // sqlite or mongo
	SQLitePath string `mapstructure:"sqlite_path"` // default <data_dir>/chatd.db
	// SQLiteBatchWait is sqlitestore.Options.BatchWait: how long the
	// writer may linger for more requests after a busy batch (0: off).
	SQLiteBatchWait time.Duration `mapstructure:"sqlite_batch_wait"`
	MongoURI        string        `mapstructure:"mongo_uri"`      // mongodb://...
	MongoDatabase   string        `mapstructure:"mongo_database"` // default chatd
	MongoMajority   bool          `mapstructure:"mongo_majority"` // write concern majority
}

// PubSubConfig selects the broker and presence backend.
type PubSubConfig struct {
	Backend  string `mapstructure:"backend"` // memory or redis
	RedisURL string `mapstructure:"redis_url"`
	// RedisCAFile, RedisCertFile and RedisKeyFile are PEM files for a
	// rediss:// URL: the CAs its certificate must chain to (default: the
	// system's), and a client certificate for a server that asks for one.
	RedisCAFile   string        `mapstructure:"redis_ca_file"`
	RedisCertFile string        `mapstructure:"redis_cert_file"`
	RedisKeyFile  string        `mapstructure:"redis_key_file"`
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
			BodyTimeout:       30 * time.Second,
			MaxConns:          20000,
			MaxConnsPerAddr:   256,
			ShutdownTimeout:   15 * time.Second,
			OpsAddr:           "127.0.0.1:9090",
		},
		TLS:     tlsconf.DefaultConfig(),
		Log:     LogConfig{Level: "info", Format: "text"},
		Runtime: RuntimeConfig{GCHeapFloorMB: 32, ExtraProcs: 1},
		Keys:    KeysConfig{MinRefetch: 30 * time.Second},
		Store:   StoreConfig{Backend: "sqlite", MongoDatabase: "chatd", MongoMajority: true},
		PubSub:  PubSubConfig{Backend: "memory", ChannelPrefix: "chatd:", PresenceTTL: 15 * time.Second},
		Auth:    auth.DefaultConfig(),
		Chat:    chat.DefaultConfig(),
		Gateway: gateway.DefaultConfig(),
		Push:    push.DefaultConfig(),
		Tracing: tracing.DefaultConfig(),
	}
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
	if c.Push.VAPIDKeyFile == "" && c.DataDir != "" {
		c.Push.VAPIDKeyFile = filepath.Join(c.DataDir, "vapid.key")
		c.vapidKeyDefault = true
	}
	c.Auth.TrustedProxies = c.HTTP.TrustedProxies
	c.Chat.TrustedProxies = c.HTTP.TrustedProxies
	c.Gateway.TrustedProxies = c.HTTP.TrustedProxies
	// One origins setting for every role that checks Origin.
	c.Auth.PublicOrigins = c.HTTP.PublicOrigins
	c.Chat.PublicOrigins = c.HTTP.PublicOrigins
	c.Chat.PresenceTTL = c.PubSub.PresenceTTL // chat refreshes every ttl/3
	if c.TLS.ACMECacheDir == "" && c.DataDir != "" {
		c.TLS.ACMECacheDir = filepath.Join(c.DataDir, "acme")
	}
	if c.TLS.Enabled() {
		c.Auth.CookieSecure = true // over HTTPS, Secure and __Host- always
	}
}

// Validate normalizes c and reports the first bad setting, naming its key.
func (c *Config) Validate() error {
	c.normalize()
	if len(c.Roles) == 0 {
		return errors.New("roles: at least one role is required (all, auth, chat, gateway)")
	}
	for _, r := range c.Roles {
		if !modules[r].role {
			return fmt.Errorf("roles: unknown role %q (want one of %s, or a comma list)", r, roleNames())
		}
	}
	// The rules below follow from the modules this process will run.
	set := resolve(c.Roles)
	runs := func(name string) bool { return slices.Contains(set, name) }
	// allHere reports whether every module of the table that needs name
	// runs in this process: then an in-process backend for it is enough.
	allHere := func(name string) bool {
		return !slices.ContainsFunc(dependents(name), func(n string) bool { return !runs(n) })
	}
	if c.HTTP.Addr == "" {
		return errors.New("http.addr: required (for example :8080)")
	}
	if c.Runtime.GCHeapFloorMB < 0 || c.Runtime.GCHeapFloorMB > 1<<20 {
		return fmt.Errorf("runtime.gc_heap_floor_mb: %d is not between 0 and %d", c.Runtime.GCHeapFloorMB, 1<<20)
	}
	if c.Runtime.ExtraProcs < 0 || c.Runtime.ExtraProcs > 64 {
		return fmt.Errorf("runtime.extra_procs: %d is not between 0 and 64", c.Runtime.ExtraProcs)
	}
	if c.HTTP.OpsAddr != "" {
		_, port, err := net.SplitHostPort(c.HTTP.OpsAddr)
		if err != nil {
			return fmt.Errorf("http.ops_addr: %q is not host:port (for example 127.0.0.1:9090, or empty for none)", c.HTTP.OpsAddr)
		}
		if c.HTTP.OpsAddr == c.HTTP.Addr && port != "0" {
			return errors.New("http.ops_addr: must differ from http.addr (the public listener must not serve /metrics)")
		}
	}
	if c.HTTP.BodyTimeout < 0 || c.HTTP.MaxConns < 0 || c.HTTP.MaxConnsPerAddr < 0 {
		return errors.New("http.body_timeout, http.max_conns, http.max_conns_per_addr: must not be negative (0 turns one off)")
	}
	if c.DataDir == "" && (runs(modSigningKey) || (runs(modStore) && c.Store.Backend == "sqlite")) {
		return errors.New("data_dir: required")
	}
	for _, o := range c.HTTP.PublicOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("http.public_origins: %q is not an origin like https://chat.example.com", o)
		}
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if c.TLS.ACME() && c.TLS.ACMECache == tlsconf.CacheRedis && c.PubSub.RedisURL == "" {
		return errors.New("tls.acme_cache: redis keeps the certificates in pubsub.redis_url's server, which is not set")
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

	// The in-process backends only work when one process runs every module
	// that needs them: a split deployment shares state through Mongo and Redis.
	switch c.Store.Backend {
	case "sqlite":
		if c.Store.SQLiteBatchWait < 0 || c.Store.SQLiteBatchWait > 100*time.Millisecond {
			return fmt.Errorf("store.sqlite_batch_wait: %s is not between 0 and 100ms", c.Store.SQLiteBatchWait)
		}
		if runs(modStore) && !allHere(modStore) {
			return fmt.Errorf("store.backend: sqlite keeps data inside one process; %s must all run here, otherwise use store.backend=mongo", strings.Join(dependents(modStore), " and "))
		}
	case "mongo":
		if runs(modStore) && c.Store.MongoURI == "" {
			return errors.New("store.mongo_uri: required with store.backend=mongo")
		}
		if runs(modStore) && c.Store.MongoDatabase == "" {
			return errors.New("store.mongo_database: required with store.backend=mongo")
		}
	default:
		return fmt.Errorf("store.backend: %q is not sqlite or mongo", c.Store.Backend)
	}
	switch c.PubSub.Backend {
	case "memory":
		if runs(modPubSub) && !allHere(modPubSub) {
			return fmt.Errorf("pubsub.backend: memory links only the modules of one process; %s must all run here, otherwise use pubsub.backend=redis", strings.Join(dependents(modPubSub), " and "))
		}
	case "redis":
		if runs(modPubSub) && c.PubSub.RedisURL == "" {
			return errors.New("pubsub.redis_url: required with pubsub.backend=redis")
		}
		if tlsFiles := c.PubSub.RedisCAFile != "" || c.PubSub.RedisCertFile != "" || c.PubSub.RedisKeyFile != ""; tlsFiles && !strings.HasPrefix(c.PubSub.RedisURL, "rediss://") {
			return errors.New("pubsub.redis_ca_file, pubsub.redis_cert_file, pubsub.redis_key_file: need a rediss:// pubsub.redis_url (TLS)")
		}
		if (c.PubSub.RedisCertFile == "") != (c.PubSub.RedisKeyFile == "") {
			return errors.New("pubsub.redis_cert_file, pubsub.redis_key_file: set both or neither")
		}
	default:
		return fmt.Errorf("pubsub.backend: %q is not memory or redis", c.PubSub.Backend)
	}
	if err := c.Tracing.Validate(); err != nil {
		return err
	}
	if ttl := c.PubSub.PresenceTTL; ttl < 3*time.Second || ttl > 5*time.Minute {
		return fmt.Errorf("pubsub.presence_ttl: must be between 3s and 5m, since chat nodes refresh presence every ttl/3 and a dead node's users go offline within it (got %s)", ttl)
	}
	if runs(modVerifier) && !runs(modSigningKey) && c.Keys.JWKSURL == "" {
		return errors.New("keys.jwks_url: required when chat or gateway runs without the auth role (for example http://auth:8080/auth/jwks)")
	}
	for _, name := range set {
		// A module left out when some modules run here must not run beside
		// only part of them (the proxy forwards both auth and chat).
		if u := modules[name].unless; slices.ContainsFunc(u, runs) {
			return fmt.Errorf("roles: the %s module runs only with none or all of %s (gateway alone, or all); a split gateway lists them as upstreams instead", name, strings.Join(u, ", "))
		}
	}
	if runs(modProxy) {
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
	if runs(RoleAuth) {
		if err := c.Auth.Validate(); err != nil {
			return err
		}
	}
	if runs(RoleChat) {
		if err := c.Chat.Validate(); err != nil {
			return err
		}
		if err := c.Push.Validate(); err != nil {
			return err
		}
		if c.Push.Enabled && c.Push.VAPIDKeyFile == "" {
			return errors.New("push.vapid_key_file: required when push.enabled and data_dir is empty")
		}
	}
	return nil
}
