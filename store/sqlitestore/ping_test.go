package sqlitestore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// Ping answers while every reader of the pool is taken (a reconnect storm
// keeps them busy with a queue behind them): /readyz must not time out,
// and the gateway must not eject, a replica that is answering.
func TestPingWithReadPoolBusy(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "chatd.db"), Options{ReadConns: 2})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	var held []*sql.Conn
	for range 2 {
		c, err := s.rdb.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	t.Cleanup(func() {
		for _, c := range held {
			_ = c.Close()
		}
	})
	// A read waits for a reader now (shown, so that the ping below is
	// known to have met a busy pool).
	waitCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.SessionByID(waitCtx, "nobody"); err == nil || waitCtx.Err() == nil {
		t.Fatalf("a read with the pool taken: %v, want it to wait past its deadline", err)
	}
	pingCtx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if err := s.Ping(pingCtx); err != nil {
		t.Fatalf("Ping with the read pool busy: %v", err)
	}
}
