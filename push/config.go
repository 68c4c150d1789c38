package push

import (
	"fmt"
	"strings"
	"time"
)

// Config is the `push` section of config.yaml.
type Config struct {
	// Enabled turns Web Push on: the VAPID key is loaded (or created) and
	// messages for users with no connection are pushed.
	Enabled bool `mapstructure:"enabled"`
	// VAPIDKeyFile is the PEM file of the VAPID private key (default
	// <data_dir>/vapid.key). A process that runs alone (in-process broker)
	// creates it when missing; chat replicas must all be given the same file.
	VAPIDKeyFile string `mapstructure:"vapid_key_file"`
	// Subject is the VAPID JWT's sub: a mailto: or https: URL where the push
	// services can reach the operator. Empty: the first https public origin,
	// else mailto:chatd@localhost (which some push services refuse).
	Subject string `mapstructure:"subject"`
	// IncludeText puts the message text (at most MaxTextBytes) in the
	// encrypted payload; otherwise only ids travel and the browser shows a
	// generic text.
	IncludeText bool `mapstructure:"include_text"`
	// Workers send pushes; QueueSize messages wait for them (a full queue
	// drops the push, counted in chatd_push_dropped_total).
	Workers   int `mapstructure:"workers"`
	QueueSize int `mapstructure:"queue_size"`
	// TTL is how long the push service keeps a push for an offline device.
	TTL time.Duration `mapstructure:"ttl"`
	// Timeout bounds one request to a push service.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxAttempts is how often a push answered 429 or 5xx (or not at all) is
	// tried, RetryBackoff the wait before the second try (doubling, or the
	// service's Retry-After up to a minute).
	MaxAttempts  int           `mapstructure:"max_attempts"`
	RetryBackoff time.Duration `mapstructure:"retry_backoff"`
	// AllowInsecureEndpoints accepts http: endpoints and endpoints on
	// loopback and private addresses. For tests only: a user could
	// otherwise make the server POST to internal services.
	AllowInsecureEndpoints bool `mapstructure:"allow_insecure_endpoints"`
}

// DefaultConfig is push on, with a few workers.
func DefaultConfig() Config {
	return Config{
		Enabled: true, Workers: 4, QueueSize: 1024,
		TTL: 12 * time.Hour, Timeout: 10 * time.Second,
		MaxAttempts: 3, RetryBackoff: 2 * time.Second,
	}
}

// maxTTL is the longest TTL push services keep (28 days).
const maxTTL = 28 * 24 * time.Hour

// Validate reports the first bad key.
func (c Config) Validate() error {
	switch {
	case !c.Enabled:
		return nil
	case c.Subject != "" && !strings.HasPrefix(c.Subject, "mailto:") && !strings.HasPrefix(c.Subject, "https://"):
		return fmt.Errorf("push: subject must be a mailto: or https:// URL (got %q)", c.Subject)
	case c.Workers < 1 || c.Workers > 256:
		return fmt.Errorf("push: workers must be between 1 and 256 (got %d)", c.Workers)
	case c.QueueSize < 1 || c.QueueSize > 1<<20:
		return fmt.Errorf("push: queue_size must be between 1 and %d (got %d)", 1<<20, c.QueueSize)
	case c.TTL < 0 || c.TTL > maxTTL:
		return fmt.Errorf("push: ttl must be between 0 and %s (got %s)", maxTTL, c.TTL)
	case c.Timeout < 100*time.Millisecond:
		return fmt.Errorf("push: timeout must be at least 100ms (got %s)", c.Timeout)
	case c.MaxAttempts < 1 || c.MaxAttempts > 10:
		return fmt.Errorf("push: max_attempts must be between 1 and 10 (got %d)", c.MaxAttempts)
	case c.RetryBackoff < 0:
		return fmt.Errorf("push: retry_backoff must not be negative (got %s)", c.RetryBackoff)
	}
	return nil
}
