package sqlitestore

import (
	"context"
	"slices"
	"sync"
)

// blockCache answers IsBlocked, which chat asks on every send, from memory:
// per blocker, the sorted ids it blocks, read from the database on the
// first question about that blocker and dropped whenever one of its blocks
// changes (Block, Unblock). Before it, every send ran an ad hoc query on the
// read pool (parsed each time, with SQLite's read locks), about a sixth of
// the server's CPU at 2,500 msg/s on one core (docs/performance.md).
//
// It is right as long as this Store is the only writer of blocks to its
// file, which is what a node is (a process opens its file once). A fill
// that raced a change is not kept: gen counts the changes, and a list read
// while one happened is thrown away.
type blockCache struct {
	mu  sync.Mutex
	gen uint64
	by  map[string][]string // blocker → blocked ids, sorted (nil: none)
}

// maxBlockCache bounds the blockers remembered; the cache starts over when
// it is full.
const maxBlockCache = 100_000

func (c *blockCache) lookup(blocker string) (ids []string, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids, ok = c.by[blocker]
	return ids, c.gen, ok
}

// fill remembers ids (sorted) as blocker's blocks, read when the
// generation was gen.
func (c *blockCache) fill(blocker string, ids []string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return // a block changed meanwhile: ids may predate it
	}
	if c.by == nil || len(c.by) >= maxBlockCache {
		c.by = make(map[string][]string)
	}
	c.by[blocker] = ids
}

// forget drops blocker's entry after a change of its blocks (committed or
// failed with an unknown outcome).
func (c *blockCache) forget(blocker string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.by, blocker)
}

// blockedBy returns the sorted ids blocker blocks, from the cache or the
// database.
func (s *Store) blockedBy(ctx context.Context, blocker string) ([]string, error) {
	ids, gen, ok := s.blocks.lookup(blocker)
	if ok {
		return ids, nil
	}
	ids, err := s.queryIDs(ctx, rBlockedSorted, blocker)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		ids = nil
	}
	s.blocks.fill(blocker, ids, gen)
	return ids, nil
}

func hasID(sorted []string, id string) bool {
	_, ok := slices.BinarySearch(sorted, id)
	return ok
}
