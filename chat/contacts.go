package chat

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"
)

// First contact (issue 10): presence reaches only contacts (privacy.go),
// so when a text message makes its two users contacts (the second of them
// has now sent in the conversation), each is sent the other's presence at
// once; otherwise both would see it only after a reload. A text send in a
// conversation not known (on this node) to be between contacts asks before
// its append whether they are (wasContact); if not, once it is stored the
// conversation is checked again off the send path, by one goroutine per
// conversation at a time, and a change sends the presence. Known contacts
// cost a map lookup; a one-sided conversation costs those two checks per
// send (bounded by the send limit) until a check finds it one-sided: then,
// for up to oneSidedTTL, sends from the side that has sent skip both
// checks (only the other side's first send, or an unblock, can make them
// contacts; the other side's sends are still checked, and a change on
// another node is published by that node).

// maxContactPairs bounds the conversations remembered as between contacts
// (the set is cleared when full: forgetting costs one check more), and
// those remembered as one-sided.
const maxContactPairs = 1 << 16

// oneSidedTTL is how long, at most, a conversation found one-sided is
// believed so for sends from its side that has sent; it bounds how late an
// unblock made on another node is noticed. Each conversation's belief lasts
// a random time between half of it and all of it (oneSidedFor), so that
// conversations found one-sided together (every socket of a restarted node
// or a reconnect storm starts at once) are not all checked again in the
// same instant: such a wave of checks, each reading the store before its
// send, stalled the split deployment's appends for a second every 30 s.
const oneSidedTTL = 30 * time.Second

// oneSidedFor is how long one conversation's one-sided belief lasts.
func oneSidedFor() time.Duration { return oneSidedTTL/2 + rand.N(oneSidedTTL/2) }

// oneSided is a conversation a check found not between contacts after a
// send: silent had not sent in it (or a block was in the way).
type oneSided struct {
	silent string
	until  time.Time
}

// contactPairs is the node's memory of the conversations known to be
// between contacts, and of the checks running.
type contactPairs struct {
	mu      sync.Mutex
	known   map[string]bool     // conversation id → its users are contacts
	running map[string]bool     // conversation id → a check runs; true: run it again
	notYet  map[string]oneSided // conversation id → found one-sided
}

// stillOneSided reports whether conv was found one-sided with to as its
// silent side, recently (p.mu held): a send from the other side cannot
// make them contacts.
func (p *contactPairs) stillOneSided(conv, to string, now time.Time) bool {
	o, ok := p.notYet[conv]
	return ok && o.silent == to && now.Before(o.until)
}

// oneSidedAfter records that a check after a send to silent found conv
// one-sided.
func (p *contactPairs) oneSidedAfter(conv, silent string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.notYet == nil || len(p.notYet) >= maxContactPairs {
		p.notYet = make(map[string]oneSided)
	}
	p.notYet[conv] = oneSided{silent: silent, until: now.Add(oneSidedFor())}
}

// forgetOneSided drops what is remembered of a and b's conversation (a
// block or an unblock between them).
func (p *contactPairs) forgetOneSided(a, b string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.notYet, store.ConversationID(a, b))
}

// wasContact reports whether from and to are contacts before a send
// between them (validateSend): known, or found so in the store. On a store
// error it says true, so that nothing is published on a guess.
func (s *Service) wasContact(ctx context.Context, from, to string) bool {
	conv := store.ConversationID(from, to)
	p := &s.pairs
	p.mu.Lock()
	known := p.known[conv]
	oneSided := !known && p.stillOneSided(conv, to, time.Now())
	p.mu.Unlock()
	if known {
		return true
	}
	if oneSided {
		return false
	}
	vis, err := s.visibleTo(ctx, from, []string{to})
	if err != nil {
		return true
	}
	if vis[to] {
		p.remember(conv)
	}
	return vis[to]
}

// remember records conv as between contacts.
func (p *contactPairs) remember(conv string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.known == nil || len(p.known) >= maxContactPairs {
		p.known = make(map[string]bool)
	}
	p.known[conv] = true
}

// noteText is called for a text message just stored (created) between
// users who were not contacts before it: it starts the check of its
// conversation.
func (s *Service) noteText(m store.Message) {
	p := &s.pairs
	p.mu.Lock()
	if p.running == nil {
		p.running = make(map[string]bool)
	}
	conv := m.ConversationID
	if p.known[conv] || p.stillOneSided(conv, m.To, time.Now()) {
		p.mu.Unlock()
		return
	}
	if _, ok := p.running[conv]; ok {
		p.running[conv] = true // the running check may have read before m: once more
		p.mu.Unlock()
		return
	}
	if !s.beginWork() {
		p.mu.Unlock()
		return
	}
	p.running[conv] = false
	p.mu.Unlock()
	go func() {
		defer s.endWork()
		for {
			if s.checkFirstContact(m.From, m.To) {
				p.remember(conv)
				p.mu.Lock()
				delete(p.running, conv)
				p.mu.Unlock()
				return
			}
			p.oneSidedAfter(conv, m.To, time.Now())
			p.mu.Lock()
			again := p.running[conv]
			if !again {
				delete(p.running, conv)
				p.mu.Unlock()
				return
			}
			p.running[conv] = false
			p.mu.Unlock()
		}
	}()
}

// checkFirstContact reports whether a and b are contacts (a block between
// them counts as not) and, when they are, sends each the other's presence.
// Two first messages racing may both send it: a presence repeated
// unchanged, which clients take as it is.
func (s *Service) checkFirstContact(a, b string) bool {
	ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
	defer cancel()
	vis, err := s.visibleTo(ctx, a, []string{b})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("first contact: contact lookup failed", "err", err)
		}
		return false
	}
	if !vis[b] {
		return false
	}
	st := s.lookupPresence(ctx, []string{a, b})
	if testHookFirstContactLookedUp != nil {
		testHookFirstContactLookedUp()
	}
	s.sendPresenceOf(ctx, [2]string{a, b}, st, nil)
	// A transition of either user between that lookup and these publishes
	// may have reached the other first, and the state read before it then
	// came after it and stayed on the other's screen. Read again and send
	// what changed: a transition after this read changes the state before
	// it publishes, so its frame comes after these.
	if again := s.lookupPresence(ctx, []string{a, b}); again != nil {
		s.sendPresenceOf(ctx, [2]string{a, b}, again, st)
	}
	return true
}

// testHookFirstContactLookedUp, when set, runs between checkFirstContact's
// presence lookup and its publishes.
var testHookFirstContactLookedUp func()

// sendPresenceOf sends each of pair the other's presence from st, only
// where it differs from before when before is not nil.
func (s *Service) sendPresenceOf(ctx context.Context, pair [2]string, st, before map[string]pubsub.Status) {
	for _, p := range [][2]string{{pair[0], pair[1]}, {pair[1], pair[0]}} {
		now := st[p[1]]
		if was := before[p[1]]; before != nil && was.Online == now.Online && was.LastSeen.Equal(now.LastSeen) {
			continue
		}
		env, err := eventEnvelope(presenceFrame{Type: "presence", UserID: p[1], Presence: toPresenceJSON(now)})
		if err == nil {
			s.publishTo(ctx, p[0], env)
		}
	}
}
