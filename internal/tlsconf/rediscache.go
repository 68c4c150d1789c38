package tlsconf

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme/autocert"
)

// RedisCache is an autocert.Cache in Redis, shared by every gateway that
// names the same server: one ACME account, one certificate per domain, and
// the HTTP-01 tokens of an order visible to the gateway the CA's request
// reaches. Entries (keys included) are kept without expiry; autocert
// replaces them on renewal.
type RedisCache struct {
	client *redis.Client
	prefix string
}

var _ autocert.Cache = (*RedisCache)(nil)

// NewRedisCache connects with opt (redispubsub.ClientOptions: the URL's
// credentials and TLS files) and keeps entries under prefix. It does not
// wait for the server; the first call does.
func NewRedisCache(opt *redis.Options, prefix string) *RedisCache {
	return &RedisCache{client: redis.NewClient(opt), prefix: prefix}
}

// Get returns the entry, or autocert.ErrCacheMiss.
func (c *RedisCache) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := c.client.Get(ctx, c.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, autocert.ErrCacheMiss
	}
	if err != nil {
		return nil, fmt.Errorf("tlsconf: redis cache get: %w", err)
	}
	return b, nil
}

// Put stores the entry.
func (c *RedisCache) Put(ctx context.Context, key string, data []byte) error {
	if err := c.client.Set(ctx, c.prefix+key, data, 0).Err(); err != nil {
		return fmt.Errorf("tlsconf: redis cache put: %w", err)
	}
	return nil
}

// Delete removes the entry; a missing one is no error.
func (c *RedisCache) Delete(ctx context.Context, key string) error {
	if err := c.client.Del(ctx, c.prefix+key).Err(); err != nil {
		return fmt.Errorf("tlsconf: redis cache delete: %w", err)
	}
	return nil
}

// Close releases the connections.
func (c *RedisCache) Close() error { return c.client.Close() }
