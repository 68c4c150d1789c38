package sqlitestore

import "context"

// Start is part of the Start/Stop pair every long-lived part of chatd has.
// Open prepared the database and started the checkpointer, so there is nothing left to start.
func (s *Store) Start(context.Context) error { return nil }

// Stop releases the store, as Close does.
func (s *Store) Stop(context.Context) error { return s.Close() }

// Ready reports whether the store answers, as Ping does (/readyz).
func (s *Store) Ready(ctx context.Context) error { return s.Ping(ctx) }
