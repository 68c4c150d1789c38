package httpapi

import (
	"context"
	"errors"
	"log/slog"

	"github.com/chatd/chatd/store"
)

// FromError is the one map from a Go error to what a client is shown, for
// every transport (a REST response through WriteError, a WebSocket `error`
// frame through its code and message):
//
//   - an *Error anywhere in err's chain, as it is;
//   - store.ErrNotFound: 404 not_found;
//   - store.ErrConflict: 409 conflict (a handler maps the conflicts that
//     have a code of their own, such as username_taken, before this);
//   - store.ErrInvalid: 400 invalid_request (handlers validate first, so
//     the store refusing a record is rare);
//   - anything else, context errors included (a backend failed, or was too
//     slow): 503 unavailable with Retry-After. The client never sees err
//     itself; the caller logs it (Fail does both).
//
// FromError(nil) is nil.
func FromError(err error) *Error {
	e, _ := classify(err)
	return e
}

// Fail returns FromError(err) and, when that hides err (the 503 of a
// backend failure), logs err as a failure of op on log: at Error, or at
// Debug when err is a cancellation (the client went away or the node is
// shutting down: nothing is wrong and nobody waits for the answer).
func Fail(log *slog.Logger, op string, err error) *Error {
	e, hidden := classify(err)
	if hidden {
		level := slog.LevelError
		if errors.Is(err, context.Canceled) {
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "backend error", "op", op, "err", err)
	}
	return e
}

// classify maps err and reports whether the result hides it.
func classify(err error) (e *Error, hidden bool) {
	switch {
	case err == nil:
		return nil, false
	case errors.As(err, &e):
		return e, false
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound, false
	case errors.Is(err, store.ErrConflict):
		return ErrConflict, false
	case errors.Is(err, store.ErrInvalid):
		return ErrInvalid, false
	}
	return ErrUnavailable, true
}
