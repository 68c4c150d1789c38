package sqlitestore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// A caller whose context ends while the writer runs its request gets ctx's
// error and must not read what the request's fn writes: write returns on
// ctx without waiting for fn. Under -race this failed for removeClaimed and
// ReferenceAttachments, which read their fn's variables after such a
// return.
func TestCancelledWriteLeavesFnVariablesAlone(t *testing.T) {
	s, _ := openTemp(t, Options{})
	for name, call := range map[string]func(context.Context) error{
		"removeClaimed": func(ctx context.Context) error {
			_, err := s.removeClaimed(ctx, []string{"a", "b"})
			return err
		},
		"ReferenceAttachments": func(ctx context.Context) error {
			_, err := s.ReferenceAttachments(ctx, []string{"a"}, "u", "alice.bob")
			if errors.Is(err, store.ErrNotFound) { // its outcome when fn won
				return nil
			}
			return err
		},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		// The context ends after the writer checked it, before fn runs; the
		// pause lets the caller return on it first (almost always), which
		// is the window -race needs. Either outcome is correct.
		testHookBeforeFn = func() {
			cancel()
			time.Sleep(20 * time.Millisecond)
		}
		if err := call(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s with its context ended in the writer: %v, want its outcome or context.Canceled", name, err)
		}
		// A request with no hook is queued behind: once it is done the
		// writer has finished the cancelled one.
		testHookBeforeFn = nil
		if err := s.write(context.Background(), func(*batch) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
}
