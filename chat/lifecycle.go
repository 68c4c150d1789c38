package chat

import "context"

// Drain is the first half of stopping, run beside http.Server.Shutdown
// (which neither tracks nor closes hijacked WebSockets): it refuses new
// work, lets in-flight sends finish, closes every WebSocket with 1001 and
// announces this node's users offline. See Shutdown.
func (s *Service) Drain(ctx context.Context) error { return s.Shutdown(ctx) }

// Stop releases what Start took. After Drain there is nothing left to do;
// without it (a start-up that failed after chat started) it drains first.
// Shutdown is idempotent, so both are it.
func (s *Service) Stop(ctx context.Context) error { return s.Shutdown(ctx) }
