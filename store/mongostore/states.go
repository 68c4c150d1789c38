package mongostore

import (
	"context"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/store"
)

// Folded states. A text message's events are its log and the source of
// truth (events.go); message_states caches, for a text message that has
// many, its state folded up to a seq (upto), so that a read applies only
// the events after it. Without it every page read all the events of its
// texts, and reaction toggles slowed a conversation's pages without bound.
//
// A state is correct as of its upto: every seq <= upto had been stored
// (seqs commit in order without gaps, see the package doc) when the events
// it folds were read, because upto is the conversation's highest seq read
// before them. So a cached state never misses an event below its upto, and
// a stale one (a lower upto, left by a write that lost a race, or a lost
// update on FerretDB) is only slower, never wrong. What changes a text
// message outside its events: EraseMessagesFrom marks it deleted (a read
// then ignores the cache) and deletes its sender's states, so the erased
// text is not kept here.

// foldThreshold is how many events a read may read before it folds them
// into new states of its text messages: a page reads fewer than that,
// plus those stored since the last fold.
const foldThreshold = 16

type stateDoc struct {
	ID             string         `bson:"_id"` // stateID
	ConversationID string         `bson:"conversation_id"`
	Seq            int64          `bson:"seq"`
	From           string         `bson:"from"`
	Upto           int64          `bson:"upto"`
	Text           string         `bson:"text"`
	EditedAt       *bson.DateTime `bson:"edited_at,omitempty"`
	Deleted        bool           `bson:"deleted,omitempty"`
	Reactions      []reactionsDoc `bson:"reactions,omitempty"`
}

// reactionsDoc is one emoji's users; a list rather than a map keyed by
// the emoji, so that no emoji is ever a field name.
type reactionsDoc struct {
	Emoji string   `bson:"emoji"`
	Users []string `bson:"users"`
}

func stateID(conv string, seq int64) string { return conv + "/" + strconv.FormatInt(seq, 10) }

func newStateDoc(m store.Message, upto int64) stateDoc {
	d := stateDoc{ID: stateID(m.ConversationID, m.Seq), ConversationID: m.ConversationID, Seq: m.Seq, From: m.From,
		Upto: upto, Text: m.Text, Deleted: m.Deleted}
	if !m.EditedAt.IsZero() {
		t := toDate(m.EditedAt)
		d.EditedAt = &t
	}
	for emoji, users := range m.Reactions {
		d.Reactions = append(d.Reactions, reactionsDoc{Emoji: emoji, Users: users})
	}
	return d
}

// apply returns the text message m (its stored document) in the state d.
func (d stateDoc) apply(m store.Message) store.Message {
	if d.Deleted {
		return m.Erased()
	}
	m.Text = d.Text
	if d.EditedAt != nil {
		m.EditedAt = fromDate(*d.EditedAt)
	}
	if len(d.Reactions) > 0 {
		m.Reactions = make(map[string][]string, len(d.Reactions))
		for _, r := range d.Reactions {
			m.Reactions[r.Emoji] = r.Users
		}
	}
	return m
}

// cachedStates returns the cached states of conv's text messages seqs.
func (s *Store) cachedStates(ctx context.Context, conv string, seqs []int64) (map[int64]stateDoc, error) {
	ids := make([]string, len(seqs))
	for i, seq := range seqs {
		ids[i] = stateID(conv, seq)
	}
	cur, err := s.states.Find(ctx, bson.D{{Key: "_id", Value: in(ids)}})
	if err != nil {
		return nil, wrapCtx(ctx, err)
	}
	var docs []stateDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrapCtx(ctx, err)
	}
	states := make(map[int64]stateDoc, len(docs))
	for _, d := range docs {
		if d.ConversationID == conv {
			states[d.Seq] = d
		}
	}
	return states, nil
}

// refold folds the events of conv's text messages msgs (their stored
// documents, each with its cached state or none) up to the conversation's
// highest seq, read first, and caches the states. It is best effort: an
// error leaves the cache as it was, which costs only time.
func (s *Store) refold(ctx context.Context, conv string, msgs []store.Message, states map[int64]stateDoc) {
	var last struct {
		Seq int64 `bson:"seq"`
	}
	if err := s.shown.FindOne(ctx, bson.D{{Key: "conversation_id", Value: conv}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}}).SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&last); err != nil {
		return
	}
	upto := last.Seq
	folded := make([]store.Message, len(msgs))
	at := make(map[int64]int, len(msgs))
	seqs := make([]int64, len(msgs))
	from := upto
	for i, m := range msgs {
		folded[i], at[m.Seq], seqs[i] = m, i, m.Seq
		after := m.Seq
		if st, ok := states[m.Seq]; ok {
			folded[i], after = st.apply(m), st.Upto
		}
		from = min(from, after)
	}
	if len(msgs) == 0 {
		return
	}
	cur, err := s.shown.Find(ctx, bson.D{
		{Key: "conversation_id", Value: conv},
		{Key: "target", Value: in(seqs)},
		{Key: "seq", Value: bson.D{{Key: "$gt", Value: from}, {Key: "$lte", Value: upto}}},
	}, options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return
	}
	var events []messageDoc
	if err := cur.All(ctx, &events); err != nil {
		return
	}
	for _, d := range events {
		i, ok := at[d.Target]
		if !ok {
			continue
		}
		if st, ok := states[d.Target]; ok && d.Seq <= st.Upto {
			continue
		}
		folded[i] = folded[i].Apply(d.message())
	}
	for _, m := range folded {
		d := newStateDoc(m, upto)
		// Replace an older state, or insert the first; a newer state
		// (upto >= ours) makes the upsert's insert a duplicate: keep it.
		_, err := s.states.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "upto", Value: bson.D{{Key: "$lt", Value: upto}}}},
			d, options.Replace().SetUpsert(true))
		if err != nil && !isDuplicate(err) {
			return
		}
	}
}

// forgetStates deletes the cached states of conv's erased text messages
// seqs, should a fold racing EraseMessagesFrom have written one.
func (s *Store) forgetStates(ctx context.Context, conv string, seqs []int64) {
	ids := make([]string, len(seqs))
	for i, seq := range seqs {
		ids[i] = stateID(conv, seq)
	}
	_, _ = s.states.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
}

// forgetStatesFrom deletes the cached states of userID's text messages.
func (s *Store) forgetStatesFrom(ctx context.Context, userID string) error {
	_, err := s.states.DeleteMany(ctx, bson.D{{Key: "from", Value: userID}})
	return wrapCtx(ctx, err)
}
