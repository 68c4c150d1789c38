package mongostore

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Blocks are read on the send path: the writer reads those of a whole
// batch with one find (refuseBlocked, writer.go), and IsBlocked serves
// AppendMessage, chat's check of a send with attachments (which it makes
// before the append) and whoever else asks. Concurrent IsBlocked calls are
// answered together: lookupWorkers goroutines take the queued lookups in
// batches (batchQueue) and answer each batch with one find on _id $in. A
// lookup's find always starts after the lookup was queued, so it sees
// every block acknowledged before IsBlocked was called, as a find of its
// own would. While a worker is free a lookup is a find of its own and
// waits for nothing; once the server falls behind and all lookupWorkers
// finds are in flight, what queues meanwhile shares the next ones, so the
// finds stop growing with the calls instead of piling up on a slow server.
// (On FerretDB at 1,000-2,000 msg/s over two replicas, when every send
// still asked, lookups seldom overlapped: 1.24 a find with one worker.)
//
// On MongoDB the $in is one probe of the _id index per key; FerretDB v1
// pushes no $in down and reads the blocks collection, which is small
// beside the messages (one document per block).
const (
	lookupWorkers  = 4   // finds in flight at once
	lookupBatchMax = 256 // keys per find
)

// blockLookup is one queued IsBlocked.
type blockLookup struct {
	ctx    context.Context
	id     string           // the block document's _id: user + "/" + other
	answer chan blockAnswer // buffered: a worker never waits for its caller
}

type blockAnswer struct {
	blocked bool
	err     error
}

func (s *Store) startLookups() {
	s.lookups = startBatchQueue(s.opts.QueueSize, lookupBatchMax, lookupWorkers, s.lookupBlocks)
}

// IsBlocked reports whether userID blocks otherID.
func (s *Store) IsBlocked(ctx context.Context, userID, otherID string) (bool, error) {
	l := &blockLookup{ctx: ctx, id: blockID(userID, otherID), answer: make(chan blockAnswer, 1)}
	if err := s.lookups.put(ctx, l); err != nil {
		return false, fmt.Errorf("mongostore: is blocked: %w", err)
	}
	select {
	case a := <-l.answer:
		if a.err != nil {
			return false, fmt.Errorf("mongostore: is blocked: %w", wrapCtx(ctx, a.err))
		}
		return a.blocked, nil
	case <-ctx.Done():
		return false, fmt.Errorf("mongostore: is blocked: %w", ctx.Err())
	}
}

// lookupBlocks answers a batch of lookups with one find. Lookups whose
// caller has gone are answered without a key in it.
func (s *Store) lookupBlocks(batch []*blockLookup) {
	if s.opts.lookupHook != nil {
		s.opts.lookupHook(len(batch))
	}
	ids := make([]string, 0, len(batch))
	for _, l := range batch {
		if l.ctx.Err() == nil {
			ids = append(ids, l.id)
		}
	}
	var (
		found map[string]bool
		err   error
	)
	if len(ids) > 0 {
		// The callers' deadlines bound their waits; the find has the
		// store's operation timeout.
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		found, err = s.blockIDsIn(ctx, ids)
		cancel()
	}
	for _, l := range batch {
		if cerr := l.ctx.Err(); cerr != nil {
			l.answer <- blockAnswer{err: cerr}
			continue
		}
		l.answer <- blockAnswer{blocked: found[l.id], err: err}
	}
}

// blockID is the _id of the document of userID's block of otherID.
func blockID(userID, otherID string) string { return userID + "/" + otherID }

// blockIDsIn returns which of the block document ids exist: one find per
// pruneChunk distinct ids (ids' limit), so one for any batch of the
// writer's default size or of the lookups.
func (s *Store) blockIDsIn(ctx context.Context, ids []string) (map[string]bool, error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	found := map[string]bool{}
	for chunk := range slices.Chunk(ids, pruneChunk) {
		have, err := s.ids(ctx, s.blocks(), bson.D{{Key: "_id", Value: in(chunk)}})
		if err != nil {
			return nil, err
		}
		for _, id := range have {
			found[id] = true
		}
	}
	return found, nil
}
