package chat

import (
	"fmt"
	"net/url"
	"time"

	"github.com/chatd/chatd/httpapi"
)

// Config is the chat role's configuration (the `chat` section of config.yaml).
type Config struct {
	// MaxTextBytes is the largest message text, in UTF-8 bytes as sent.
	MaxTextBytes int `mapstructure:"max_text_bytes"`
	// BodyLimit is the largest REST request body.
	BodyLimit int64 `mapstructure:"body_limit"`
	// FrameLimit is the largest WebSocket frame a client may send; a larger
	// one closes the connection with 1009.
	FrameLimit int64 `mapstructure:"frame_limit"`
	// Heartbeat is the ping interval (heartbeat_s in hello); a connection
	// silent for more than twice as long is closed.
	Heartbeat time.Duration `mapstructure:"heartbeat"`
	// SendQueue bounds each connection's outbound queue; a connection whose
	// queue is full is closed with 1013.
	SendQueue int `mapstructure:"send_queue"`
	// WriteTimeout bounds a write to a connection's socket: a peer that
	// accepts no bytes for that long is closed with 1013, as is one whose
	// queue fills.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// SendWindow is how many `send` frames of one connection may be in
	// flight (read, not yet answered) at once when the store can append
	// without waiting (store.AsyncAppender); a connection with that many
	// pending is not read until one is answered.
	SendWindow int `mapstructure:"send_window"`
	// PublicOrigins are the allowed Origins ("scheme://host[:port]") for /ws
	// and for cookie-authenticated unsafe requests; empty means the request's
	// own host. Not a config key: app sets it from http.public_origins.
	PublicOrigins []string `mapstructure:"-"`
	// OfflineGrace is how long a user's last connection may be gone before
	// the user is announced offline (a reconnect in between cancels it).
	OfflineGrace time.Duration `mapstructure:"offline_grace"`
	// TypingInterval is the least time between two forwarded typing events
	// of one user to one peer.
	TypingInterval time.Duration `mapstructure:"typing_interval"`
	// HistoryLimit is the default page size of the history, HistoryMax the largest.
	HistoryLimit int `mapstructure:"history_limit"`
	HistoryMax   int `mapstructure:"history_max"`
	// RevocationRecheck is how often a node asks the store whether the
	// sessions of its sockets were revoked: the fallback for a revocation
	// event the broker lost.
	RevocationRecheck time.Duration `mapstructure:"revocation_recheck"`
	// PresenceTTL is how long the presence registry keeps this node's
	// entries without a refresh (pubsub.presence_ttl; app sets it, it is
	// not a chat key). The node refreshes them every PresenceTTL/3.
	PresenceTTL time.Duration `mapstructure:"-"`

	// SendRate and SendBurst limit each user's sends (every kind, REST and
	// WebSocket) on this node: a token bucket of SendBurst refilled at
	// SendRate per second. A refused send is 429 rate_limited and stores
	// nothing.
	SendRate  float64 `mapstructure:"send_rate"`
	SendBurst int     `mapstructure:"send_burst"`
	// MaxSocketsPerUser and MaxSocketsPerAddr cap this node's WebSockets
	// per user and per client address; a further upgrade gets 429.
	MaxSocketsPerUser int `mapstructure:"max_sockets_per_user"`
	MaxSocketsPerAddr int `mapstructure:"max_sockets_per_addr"`
	// TrustedProxies are the proxies whose X-Forwarded-For names the client
	// address. Not a config key: app sets it from http.trusted_proxies.
	TrustedProxies []string `mapstructure:"-"`
	// StoreBreakerFailures consecutive failed appends open the store
	// breaker: sends are refused at once with 503 until the store answers
	// again (breaker.go).
	StoreBreakerFailures int `mapstructure:"store_breaker_failures"`
	// StoreStallTimeout: appends in flight that made no progress for this
	// long open the breaker too (a frozen store that neither answers nor fails).
	StoreStallTimeout time.Duration `mapstructure:"store_stall_timeout"`

	// Attachments (attachments.go). MaxAttachmentBytes is the largest
	// upload (413 beyond). UploadRate and UploadBurst limit each user's
	// uploads on this node (a token bucket, 429 beyond); UploadQuotaBytes
	// bounds the bytes a user uploads in 24 h (429 beyond).
	// AttachmentRetention is how long an upload no message references is
	// kept; every AttachmentPruneInterval a node removes the older ones.
	MaxAttachmentBytes      int64         `mapstructure:"max_attachment_bytes"`
	UploadRate              float64       `mapstructure:"upload_rate"`
	UploadBurst             int           `mapstructure:"upload_burst"`
	UploadQuotaBytes        int64         `mapstructure:"upload_quota_bytes"`
	AttachmentRetention     time.Duration `mapstructure:"attachment_retention"`
	AttachmentPruneInterval time.Duration `mapstructure:"attachment_prune_interval"`
}

// DefaultConfig returns the defaults of api.md.
func DefaultConfig() Config {
	return Config{
		MaxTextBytes:   4096,
		BodyLimit:      64 << 10,
		FrameLimit:     16 << 10,
		Heartbeat:      25 * time.Second,
		SendQueue:      256,
		WriteTimeout:   5 * time.Second,
		SendWindow:     32,
		OfflineGrace:   2 * time.Second,
		TypingInterval: 2 * time.Second,
		HistoryLimit:   50,
		HistoryMax:     200,

		RevocationRecheck: 30 * time.Second,
		PresenceTTL:       15 * time.Second,

		SendRate:             20,
		SendBurst:            100,
		MaxSocketsPerUser:    20,
		MaxSocketsPerAddr:    200,
		StoreBreakerFailures: 5,
		StoreStallTimeout:    2 * time.Second,

		MaxAttachmentBytes:      25 << 20,
		UploadRate:              0.5,
		UploadBurst:             20,
		UploadQuotaBytes:        1 << 30,
		AttachmentRetention:     24 * time.Hour,
		AttachmentPruneInterval: 10 * time.Minute,
	}
}

// maxSendWindow bounds send_window (each pending send holds its message).
const maxSendWindow = 1024

// maxOfflineGrace keeps the offline announcement within api.md's 5 s.
const maxOfflineGrace = 4 * time.Second

// The presence ttl's bounds: the node refreshes every ttl/3, and a dead
// node's users go offline within the ttl.
const (
	minPresenceTTL = 3 * time.Second
	maxPresenceTTL = 5 * time.Minute
)

// Validate reports the first bad key.
func (c Config) Validate() error {
	switch {
	case c.MaxTextBytes <= 0:
		return fmt.Errorf("chat: max_text_bytes must be positive (got %d)", c.MaxTextBytes)
	case c.BodyLimit < 1024:
		return fmt.Errorf("chat: body_limit must be at least 1024 bytes (got %d)", c.BodyLimit)
	case c.FrameLimit < 1024:
		return fmt.Errorf("chat: frame_limit must be at least 1024 bytes (got %d)", c.FrameLimit)
	case c.Heartbeat < time.Second:
		return fmt.Errorf("chat: heartbeat must be at least 1s (got %s)", c.Heartbeat)
	case c.SendQueue <= 0:
		return fmt.Errorf("chat: send_queue must be positive (got %d)", c.SendQueue)
	case c.WriteTimeout < 100*time.Millisecond:
		return fmt.Errorf("chat: write_timeout must be at least 100ms (got %s)", c.WriteTimeout)
	case c.SendWindow < 1 || c.SendWindow > maxSendWindow:
		return fmt.Errorf("chat: send_window must be between 1 and %d (got %d)", maxSendWindow, c.SendWindow)
	case c.OfflineGrace < 0 || c.OfflineGrace > maxOfflineGrace:
		return fmt.Errorf("chat: offline_grace must be between 0 and %s (got %s)", maxOfflineGrace, c.OfflineGrace)
	case c.RevocationRecheck < time.Second:
		return fmt.Errorf("chat: revocation_recheck must be at least 1s (got %s)", c.RevocationRecheck)
	case c.PresenceTTL < minPresenceTTL || c.PresenceTTL > maxPresenceTTL:
		return fmt.Errorf("chat: the presence ttl (pubsub.presence_ttl) must be between %s and %s, so its refresh every ttl/3 is neither busier than once a second nor slower than a user going offline should take (got %s)", minPresenceTTL, maxPresenceTTL, c.PresenceTTL)
	case c.TypingInterval <= 0:
		return fmt.Errorf("chat: typing_interval must be positive (got %s)", c.TypingInterval)
	case c.HistoryMax <= 0:
		return fmt.Errorf("chat: history_max must be positive (got %d)", c.HistoryMax)
	case c.HistoryLimit <= 0 || c.HistoryLimit > c.HistoryMax:
		return fmt.Errorf("chat: history_limit must be between 1 and history_max (got %d)", c.HistoryLimit)
	case c.SendRate <= 0:
		return fmt.Errorf("chat: send_rate must be positive (got %g)", c.SendRate)
	case c.SendBurst < 1:
		return fmt.Errorf("chat: send_burst must be at least 1 (got %d)", c.SendBurst)
	case c.MaxSocketsPerUser < 1:
		return fmt.Errorf("chat: max_sockets_per_user must be at least 1 (got %d)", c.MaxSocketsPerUser)
	case c.MaxSocketsPerAddr < 1:
		return fmt.Errorf("chat: max_sockets_per_addr must be at least 1 (got %d)", c.MaxSocketsPerAddr)
	case c.StoreBreakerFailures < 1:
		return fmt.Errorf("chat: store_breaker_failures must be at least 1 (got %d)", c.StoreBreakerFailures)
	case c.StoreStallTimeout < 100*time.Millisecond:
		return fmt.Errorf("chat: store_stall_timeout must be at least 100ms (got %s)", c.StoreStallTimeout)
	case c.MaxAttachmentBytes < 1:
		return fmt.Errorf("chat: max_attachment_bytes must be positive (got %d)", c.MaxAttachmentBytes)
	case c.UploadRate <= 0 || c.UploadBurst < 1:
		return fmt.Errorf("chat: upload_rate must be positive and upload_burst at least 1 (got %g, %d)", c.UploadRate, c.UploadBurst)
	case c.UploadQuotaBytes < c.MaxAttachmentBytes:
		return fmt.Errorf("chat: upload_quota_bytes must be at least max_attachment_bytes (got %d)", c.UploadQuotaBytes)
	case c.AttachmentRetention < time.Minute:
		return fmt.Errorf("chat: attachment_retention must be at least 1m (got %s)", c.AttachmentRetention)
	case c.AttachmentPruneInterval < time.Second:
		return fmt.Errorf("chat: attachment_prune_interval must be at least 1s (got %s)", c.AttachmentPruneInterval)
	}
	if _, err := httpapi.ParseProxies(c.TrustedProxies); err != nil {
		return fmt.Errorf("chat: http.trusted_proxies: %w", err)
	}
	for _, o := range c.PublicOrigins {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("chat: public_origins: %q is not scheme://host[:port]", o)
		}
	}
	return nil
}
