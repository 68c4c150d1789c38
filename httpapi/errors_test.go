package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

func TestFromError(t *testing.T) {
	tooMany := &Error{Status: 429, Code: CodeRateLimited, Message: "slow down"}
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{tooMany, 429, CodeRateLimited},
		{fmt.Errorf("login: %w", tooMany), 429, CodeRateLimited},
		{fmt.Errorf("sqlitestore: user: %w", store.ErrNotFound), 404, CodeNotFound},
		{fmt.Errorf("mongostore: rotate: %w", store.ErrConflict), 409, CodeConflict},
		{fmt.Errorf("sqlitestore: append: %w", store.ErrInvalid), 400, CodeInvalidRequest},
		{context.Canceled, 503, CodeUnavailable},
		{fmt.Errorf("mongostore: find: %w", context.DeadlineExceeded), 503, CodeUnavailable},
		{errors.New("sqlite: disk I/O error"), 503, CodeUnavailable},
	}
	for _, c := range cases {
		e := FromError(c.err)
		if e == nil || e.Status != c.status || e.Code != c.code {
			t.Errorf("FromError(%v) = %+v, want %d %s", c.err, e, c.status, c.code)
			continue
		}
		if e.Status == 503 && (e.RetryAfter <= 0 || strings.Contains(e.Message, "sqlite") || strings.Contains(e.Message, "mongostore")) {
			t.Errorf("FromError(%v) = %+v: a 503 says when to retry and never shows the cause", c.err, e)
		}
	}
	if e := FromError(nil); e != nil {
		t.Errorf("FromError(nil) = %+v", e)
	}
}

func TestFailLogsOnlyWhatItHides(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cases := []struct {
		err   error
		level string // "" when nothing is logged
	}{
		{errors.New("sqlite: disk I/O error"), "ERROR"},
		{fmt.Errorf("mongostore: find: %w", context.DeadlineExceeded), "ERROR"},
		{fmt.Errorf("mongostore: find: %w", context.Canceled), "DEBUG"},
		{fmt.Errorf("user: %w", store.ErrNotFound), ""},
		{&Error{Status: 400, Code: CodeInvalidRequest, Message: "bad"}, ""},
	}
	for _, c := range cases {
		buf.Reset()
		e := Fail(log, "user lookup", c.err)
		if want := FromError(c.err); e != want {
			t.Errorf("Fail(%v) = %+v, FromError gives %+v", c.err, e, want)
		}
		line := buf.String()
		switch {
		case c.level == "" && line != "":
			t.Errorf("Fail(%v) logged %q", c.err, line)
		case c.level != "" && (!strings.Contains(line, "level="+c.level) || !strings.Contains(line, "op=\"user lookup\"") || !strings.Contains(line, c.err.Error())):
			t.Errorf("Fail(%v) logged %q, want a %s line with the op and the error", c.err, line, c.level)
		}
	}
}

func TestWireForms(t *testing.T) {
	at := time.Date(2026, 11, 27, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
	if got := FormatTime(at); got != "2026-11-27T10:00:00.123Z" {
		t.Errorf("FormatTime = %q", got)
	}
	u := NewUser("u1", "alice", "Alice")
	if u != (User{ID: "u1", Username: "alice", DisplayName: "Alice"}) {
		t.Errorf("NewUser = %+v", u)
	}
	if b, err := json.Marshal(u); err != nil || string(b) != `{"id":"u1","username":"alice","display_name":"Alice"}` {
		t.Errorf("User encodes as %s (%v)", b, err)
	}
}
