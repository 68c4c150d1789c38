package sqlitestore

import (
	"context"
	"slices"
	"sync"
)

// userCache remembers per-user answers of reads that chat asks on every
// send, from memory, read from the database on the first question about a
// user and dropped whenever what they depend on changes:
//
//   - blocks: IsBlocked, the sorted ids a blocker blocks, dropped by Block
//     and Unblock. Before it, every send ran an ad hoc query on the read
//     pool (parsed each time, with SQLite's read locks), about a sixth of
//     the server's CPU at 2,500 msg/s on one core (docs/performance.md).
//   - blockers: the sorted ids that block a user, dropped by Block and
//     Unblock of that user; with blocks it answers BlockedEither, which
//     presence asks for the contacts it shows.
//   - contacts: ContactIDs, which presence asks on every connect, every
//     disconnect and every conversation list (three times per client of
//     the reconnect storm). Contacts only ever grow: an entry is dropped
//     after the commit of the text message that makes two users contacts.
//   - pushSubs: PushSubscriptions, which the push sender reads for every
//     text message's recipient (most have none), dropped by every change of
//     subscriptions. It was 14 % of the server's CPU at 3,000 msg/s on one
//     core.
//
// It is right as long as this Store is the only writer of its file, which
// is what a node is (a process opens its file once). A fill that raced a
// change is not kept: gen counts the changes, and an answer read while one
// happened is thrown away.
type userCache[V any] struct {
	mu  sync.Mutex
	gen uint64
	by  map[string]V
}

// maxUserCache bounds the users remembered; a cache starts over when it is
// full.
const maxUserCache = 100_000

func (c *userCache[V]) lookup(user string) (v V, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok = c.by[user]
	return v, c.gen, ok
}

// fill remembers v as user's answer, read when the generation was gen.
func (c *userCache[V]) fill(user string, v V, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return // a change happened meanwhile: v may predate it
	}
	if c.by == nil || len(c.by) >= maxUserCache {
		c.by = make(map[string]V)
	}
	c.by[user] = v
}

// forget drops user's entry after a change (committed or failed with an
// unknown outcome).
func (c *userCache[V]) forget(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.by, user)
}

// forgetAll drops every entry, for a change whose users are not known
// (a subscription removed by its endpoint).
func (c *userCache[V]) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.by)
}

// blockedBy returns the sorted ids blocker blocks, from the cache or the
// database. The slice is shared: callers must not modify it.
func (s *Store) blockedBy(ctx context.Context, blocker string) ([]string, error) {
	return s.cachedIDs(ctx, &s.blocks, rBlockedSorted, blocker)
}

// blockersOf returns the sorted ids that block blocked (shared, like
// blockedBy's).
func (s *Store) blockersOf(ctx context.Context, blocked string) ([]string, error) {
	return s.cachedIDs(ctx, &s.blockers, rBlockersSorted, blocked)
}

// cachedIDs is user's entry in c, read by prepared read stmt (one text
// column) on a miss; none is kept as nil.
func (s *Store) cachedIDs(ctx context.Context, c *userCache[[]string], stmt int, user string) ([]string, error) {
	return cached(c, user, func() ([]string, error) {
		ids, err := s.queryIDs(ctx, stmt, user)
		if len(ids) == 0 {
			ids = nil
		}
		return ids, err
	})
}

// cached is user's entry in c, or what read returns, kept unless a change
// happened while it read.
func cached[V any](c *userCache[V], user string, read func() (V, error)) (V, error) {
	v, gen, ok := c.lookup(user)
	if ok {
		return v, nil
	}
	v, err := read()
	if err != nil {
		var zero V
		return zero, err
	}
	c.fill(user, v, gen)
	return v, nil
}

func hasID(sorted []string, id string) bool {
	_, ok := slices.BinarySearch(sorted, id)
	return ok
}
