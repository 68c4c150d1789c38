package auth

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// SessionPruneStore is the store method the pruner uses (store.Sessions has
// it; see there for its errors).
type SessionPruneStore interface {
	PruneSessions(ctx context.Context, before time.Time) (int64, error)
}

// SessionPruner deletes, every interval, the sessions whose refresh token
// expired or that were revoked more than retention ago. Without it every
// login and every refresh chain would stay in the store forever. Running it
// on several auth replicas at once is harmless: each deletion is idempotent.
type SessionPruner struct {
	store     SessionPruneStore
	retention time.Duration
	interval  time.Duration
	log       *slog.Logger
	now       func() time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewSessionPruner returns a pruner for the auth config's
// session_retention and session_prune_interval. Start runs it.
func NewSessionPruner(s SessionPruneStore, cfg Config, logger *slog.Logger) *SessionPruner {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &SessionPruner{store: s, retention: cfg.SessionRetention, interval: cfg.SessionPruneInterval, log: logger, now: time.Now}
}

// Start runs a first round at once and then one every interval, until Stop.
func (p *SessionPruner) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Go(func() {
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			p.prune(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return nil
}

// Stop ends the loop (a round in progress is cancelled) and waits for it
// until ctx ends.
func (p *SessionPruner) Stop(ctx context.Context) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prune runs one round, bounded by the interval so that a hung store does
// not stack rounds.
func (p *SessionPruner) prune(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, p.interval)
	defer cancel()
	before := p.now().Add(-p.retention)
	n, err := p.store.PruneSessions(ctx, before)
	switch {
	case err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// Stopping.
	case err != nil:
		p.log.Warn("session prune failed; next round will go on", "deleted", n, "err", err)
	case n > 0:
		p.log.Info("pruned ended sessions", "deleted", n, "ended_before", before)
	}
}
