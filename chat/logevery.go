package chat

import (
	"sync/atomic"
	"time"
)

// logEvery lets one log line of a kind through per interval and counts the
// ones it held back, so that a failure repeated by every request (a full
// disk, a store that is down) shows as one line every few seconds with a
// count, not as one line per request.
type logEvery struct {
	every      time.Duration
	last       atomic.Int64 // unix ns of the last line let through
	suppressed atomic.Int64 // lines held back since then
}

// allow reports whether a line may be logged now and, if so, how many were
// held back since the last one.
func (l *logEvery) allow() (ok bool, suppressed int64) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(l.every) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}

// appendErrorLogEvery is how often a failing append is logged.
const appendErrorLogEvery = 5 * time.Second
