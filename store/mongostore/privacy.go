package mongostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/store"
)

// Contacts: a conversation is a contact once each member has a message in
// it, which the (conversation_id, from, seq) index answers with one short
// lookup per member. Once true it stays true (messages are erased, never
// removed), so the members found to have sent are remembered (senders) and
// only the others are looked up again.

// contactCache is a set of keys that, once true, stay true: the users
// known to have sent in a conversation (Store.senders). Bounded: when full
// it starts again empty, which costs a read more, never a wrong answer.
type contactCache struct {
	mu sync.Mutex
	m  map[string]struct{}
}

func (c *contactCache) has(conv string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[conv]
	return ok
}

func (c *contactCache) add(conv string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= seqCacheMax {
		c.m = make(map[string]struct{})
	}
	c.m[conv] = struct{}{}
}

// blockDoc is one block: user_id blocks blocked_id.
type blockDoc struct {
	ID        string    `bson:"_id"` // user_id + "/" + blocked_id
	UserID    string    `bson:"user_id"`
	BlockedID string    `bson:"blocked_id"`
	CreatedAt time.Time `bson:"created_at"`
}

func (s *Store) blocks() *mongo.Collection { return s.db.Collection("blocks") }

// ensurePrivacyIndexes creates the blocks collection's indexes.
func (s *Store) ensurePrivacyIndexes(ctx context.Context) error {
	for _, key := range []string{"user_id", "blocked_id"} {
		_, err := s.blocks().Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys: bson.D{{Key: key, Value: 1}}, Options: options.Index().SetName(key),
		})
		if err != nil {
			return fmt.Errorf("create indexes on blocks: %w", wrapCtx(ctx, err))
		}
	}
	return nil
}

// ContactIDs returns the peers of userID's conversations in which both
// members sent a message.
func (s *Store) ContactIDs(ctx context.Context, userID string) ([]string, error) {
	docs, err := s.memberConversations(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("mongostore: contact ids: %w", err)
	}
	ids := []string{}
	for _, d := range docs {
		peer := d.peerOf(userID)
		both := true
		for _, from := range []string{userID, peer} {
			ok, err := s.hasSentCached(ctx, d.ID, from)
			if err != nil {
				return nil, fmt.Errorf("mongostore: contact ids: %w", err)
			}
			if !ok {
				both = false
				break
			}
		}
		if both {
			ids = append(ids, peer)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// hasSentCached is hasSent, remembered once true: a one-sided
// conversation (one user wrote, the other never answered) is asked about
// on every contact check (chat's, after each oneSidedTTL), and the side
// that wrote is the costly answer where the server does not stop at the
// first match (FerretDB v1 reads every message of from in conv for it: the
// split deployment's curve stalled for seconds whenever a wave of such
// checks came, TestContactIDsRemembersSenders). The answer never turns
// false: no message document is ever removed (EraseMessagesFrom blanks
// them and keeps their kind), so every replica may keep it.
func (s *Store) hasSentCached(ctx context.Context, conv, from string) (bool, error) {
	key := conv + "\x00" + from
	if s.senders.has(key) {
		return true, nil
	}
	ok, err := s.hasSent(ctx, conv, from)
	if ok {
		s.senders.add(key)
	}
	return ok, err
}

// hasSent reports whether from has a text message in conv (an event, a
// reaction say, makes no contact).
func (s *Store) hasSent(ctx context.Context, conv, from string) (bool, error) {
	err := s.messages.FindOne(ctx, bson.D{{Key: "conversation_id", Value: conv}, {Key: "from", Value: from}, textOnly},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	case err != nil:
		return false, wrapCtx(ctx, err)
	}
	return true, nil
}

// Block records that userID blocks otherID.
func (s *Store) Block(ctx context.Context, userID, otherID string, at time.Time) error {
	if userID == "" || otherID == "" || userID == otherID {
		return fmt.Errorf("mongostore: block: %w", store.ErrInvalid)
	}
	_, err := s.blocks().InsertOne(ctx, blockDoc{ID: blockID(userID, otherID), UserID: userID, BlockedID: otherID, CreatedAt: at.UTC().Truncate(time.Millisecond)})
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("mongostore: block: %w", wrapCtx(ctx, err))
	}
	return nil
}

// Unblock removes userID's block of otherID.
func (s *Store) Unblock(ctx context.Context, userID, otherID string) error {
	if _, err := s.blocks().DeleteOne(ctx, bson.D{{Key: "_id", Value: blockID(userID, otherID)}}); err != nil {
		return fmt.Errorf("mongostore: unblock: %w", wrapCtx(ctx, err))
	}
	return nil
}

// BlockedIDs returns whom userID blocks, most recent first.
func (s *Store) BlockedIDs(ctx context.Context, userID string) ([]string, error) {
	docs, err := s.findBlocks(ctx, bson.D{{Key: "user_id", Value: userID}})
	if err != nil {
		return nil, fmt.Errorf("mongostore: blocked ids: %w", err)
	}
	slices.SortFunc(docs, func(a, b blockDoc) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.BlockedID, b.BlockedID)
	})
	ids := make([]string, 0, len(docs))
	for _, d := range docs {
		ids = append(ids, d.BlockedID)
	}
	return ids, nil
}

// BlockedEither returns the ids in a block with userID either way.
func (s *Store) BlockedEither(ctx context.Context, userID string) ([]string, error) {
	ids := []string{}
	for _, key := range []string{"user_id", "blocked_id"} {
		docs, err := s.findBlocks(ctx, bson.D{{Key: key, Value: userID}})
		if err != nil {
			return nil, fmt.Errorf("mongostore: blocked either: %w", err)
		}
		for _, d := range docs {
			if key == "user_id" {
				ids = append(ids, d.BlockedID)
			} else {
				ids = append(ids, d.UserID)
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

func (s *Store) findBlocks(ctx context.Context, filter bson.D) ([]blockDoc, error) {
	cur, err := s.blocks().Find(ctx, filter)
	if err != nil {
		return nil, wrapCtx(ctx, err)
	}
	var docs []blockDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrapCtx(ctx, err)
	}
	return docs, nil
}
