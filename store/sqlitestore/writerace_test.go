package sqlitestore

import (
	"context"
	"errors"
	"testing"
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
			return err
		},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		// The context ends after the writer checked it, before fn runs.
		testHookBeforeFn = cancel
		err := call(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with its context ended in the writer: %v, want context.Canceled", name, err)
		}
		// A request with no hook is queued behind: once it is done the
		// writer has finished the cancelled one.
		testHookBeforeFn = nil
		if err := s.write(context.Background(), func(*batch) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
}
