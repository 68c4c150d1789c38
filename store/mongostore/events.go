package mongostore

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/store"
)

// Message events. An event (edit, delete, reaction) is a message document
// of its own, with its kind and target; inserting it is the one atomic
// step, like any append. A text message's current state is not written to
// its document (FerretDB's updates are not atomic, see the package doc):
// every read that returns text messages also reads the events that target
// them (the conversation_target_seq index), after the state cached for them in
// message_states when there is one (states.go), and applies them in seq
// order with store.Message.Apply. The rules (store.CheckEvent) are checked against
// that state before the insert; an event that loses a race with a delete
// is stored but changes nothing, as Apply ignores what CheckEvent refuses.

// textOnly matches the text messages: their documents have no kind.
var textOnly = bson.E{Key: "kind", Value: bson.D{{Key: "$exists", Value: false}}}

// withState replaces each text message of conversation conv in msgs by its
// current state, reading the events through coll: those after its cached
// state (states.go), or all of them when it has none. A read through
// s.shown that read foldThreshold events or more folds them into new
// cached states of all msgs' text messages.
func (s *Store) withState(ctx context.Context, coll *mongo.Collection, conv string, msgs []store.Message) error {
	at := make(map[int64]int, len(msgs))
	seqs := make([]int64, 0, len(msgs))
	lookup := make([]int64, 0, len(msgs))
	erased := 0
	for i, m := range msgs {
		switch {
		case !m.IsText():
		case m.Deleted: // erased with its sender's account: no event applies
			msgs[i] = m.Erased()
			lookup = append(lookup, m.Seq)
			erased++
		default:
			at[m.Seq] = i
			seqs = append(seqs, m.Seq)
			lookup = append(lookup, m.Seq)
		}
	}
	if len(seqs) == 0 && erased == 0 {
		return nil
	}
	states, err := s.cachedStates(ctx, conv, lookup)
	if err != nil {
		return err
	}
	var stale []int64
	for seq := range states {
		if _, ok := at[seq]; !ok {
			stale = append(stale, seq) // an erased message's
		}
	}
	if len(stale) > 0 {
		s.forgetStates(ctx, conv, stale)
	}
	if len(seqs) == 0 {
		return nil
	}
	// One range for all: the events after the lowest cached upto (a text
	// without a state has no event below its own seq); those a state has
	// folded already are skipped here. A refold gives all the page's texts
	// one upto, so this reads only what came since. ($or with a range per
	// text would be exact, but FerretDB runs it many times slower.)
	base := make([]store.Message, 0, len(seqs))
	from := int64(0)
	for k, seq := range seqs {
		base = append(base, msgs[at[seq]])
		after := seq
		if st, ok := states[seq]; ok {
			msgs[at[seq]], after = st.apply(msgs[at[seq]]), st.Upto
		}
		if k == 0 || after < from {
			from = after
		}
	}
	cur, err := coll.Find(ctx, bson.D{
		{Key: "conversation_id", Value: conv},
		{Key: "target", Value: in(seqs)},
		{Key: "seq", Value: bson.D{{Key: "$gt", Value: from}}},
	}, options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return wrapCtx(ctx, err)
	}
	var events []messageDoc
	if err := cur.All(ctx, &events); err != nil {
		return wrapCtx(ctx, err)
	}
	read := len(events)
	for _, d := range events {
		i, ok := at[d.Target]
		if !ok {
			continue
		}
		if st, ok := states[d.Target]; ok && d.Seq <= st.Upto {
			continue
		}
		msgs[i] = msgs[i].Apply(d.message())
	}
	if coll != s.shown {
		return nil // local reads may see what is not yet majority committed: no cache from them
	}
	after := foldThreshold
	if s.opts.foldAfter > 0 {
		after = s.opts.foldAfter
	}
	if read >= after {
		s.refold(ctx, conv, base, states)
	}
	return nil
}

// messageAt returns the message of conv with seq, in its current state
// when it is a text message, reading through coll.
func (s *Store) messageAt(ctx context.Context, coll *mongo.Collection, conv string, seq int64) (store.Message, bool, error) {
	var d messageDoc
	err := coll.FindOne(ctx, bson.D{{Key: "conversation_id", Value: conv}, {Key: "seq", Value: seq}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Message{}, false, nil
	}
	if err != nil {
		return store.Message{}, false, wrapCtx(ctx, err)
	}
	msgs := []store.Message{d.message()}
	if err := s.withState(ctx, coll, conv, msgs); err != nil {
		return store.Message{}, false, err
	}
	return msgs[0], true, nil
}

// checkAppend applies AppendMessage's rules on reply_to and on events to
// the prepared m, on the freshest state (the local reads of the seq
// allocation).
func (s *Store) checkAppend(ctx context.Context, m store.Message) error {
	if m.IsText() {
		if m.ReplyTo == 0 {
			return nil
		}
		r, ok, err := s.messageAt(ctx, s.messages, m.ConversationID, m.ReplyTo)
		if err != nil {
			return err
		}
		if !ok || !r.IsText() {
			return fmt.Errorf("reply_to %d is no text message of the conversation: %w", m.ReplyTo, store.ErrInvalid)
		}
		return nil
	}
	target, ok, err := s.messageAt(ctx, s.messages, m.ConversationID, m.Target)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no message %d in the conversation: %w", m.Target, store.ErrNotFound)
	}
	return store.CheckEvent(target, m)
}

// lastText returns the conversation's text message with the highest seq,
// in its current state.
func (s *Store) lastText(ctx context.Context, conv string) (store.Message, bool, error) {
	var d messageDoc
	err := s.shown.FindOne(ctx, bson.D{{Key: "conversation_id", Value: conv}, textOnly},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Message{}, false, nil
	}
	if err != nil {
		return store.Message{}, false, wrapCtx(ctx, err)
	}
	msgs := []store.Message{d.message()}
	if err := s.withState(ctx, s.shown, conv, msgs); err != nil {
		return store.Message{}, false, err
	}
	return msgs[0], true, nil
}
