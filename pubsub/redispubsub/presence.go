package redispubsub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/chatd/chatd/pubsub"
	"github.com/redis/go-redis/v9"
)

// Presence keys, all under ChannelPrefix:
//
//	presence:USER   hash: node id -> expiry (unix ms, Redis clock)
//	lastseen:USER   string: unix ms of the user's last offline transition
//	presence:users  set of users that have a presence hash (for the sweeper)
//	presence:sweeper  lock: the one node sweeping this round
//
// Expiries use the Redis server's clock (TIME inside the scripts), so node
// clocks may differ. An entry whose expiry passed counts as absent; the
// script that removes a user's last entry reports the offline transition,
// so it is reported once cluster-wide.

func (b *Broker) hashKey(userID string) string     { return b.opt.ChannelPrefix + "presence:" + userID }
func (b *Broker) lastSeenKey(userID string) string { return b.opt.ChannelPrefix + "lastseen:" + userID }
func (b *Broker) usersKey() string                 { return b.opt.ChannelPrefix + "presence:users" }
func (b *Broker) sweepLockKey() string             { return b.opt.ChannelPrefix + "presence:sweeper" }
func (b *Broker) ttlMillis() int64                 { return b.opt.PresenceTTL.Milliseconds() }

const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// connectScript: KEYS hash, users; ARGV node, ttl ms, user.
// Returns 1 if no live entry existed (the user came online).
var connectScript = redis.NewScript(luaNow + `
local first = 1
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if tonumber(all[i+1]) > now then
    first = 0
  elseif all[i] ~= ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
redis.call('SADD', KEYS[2], ARGV[3])
return first
`)

// disconnectScript: KEYS hash, lastseen, users; ARGV node, at ms, user.
// Returns 1 if it removed the node's entry and no live entry remains (the
// user went offline); then the hash is dropped and last seen set.
var disconnectScript = redis.NewScript(luaNow + `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
local vals = redis.call('HVALS', KEYS[1])
for _, v in ipairs(vals) do
  if tonumber(v) > now then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2])
return 1
`)

// refreshScript: KEYS users, hash...; ARGV node, ttl ms, user... (one per
// hash). Renews the node's entry of each user that has one (expired but
// not yet swept included: no offline was reported for it) and returns the
// users that have none: a Disconnect after the caller's snapshot removed
// it, or it was lost, and a refresh must not resurrect it.
var refreshScript = redis.NewScript(luaNow + `
local exp = now + tonumber(ARGV[2])
local missing = {}
for i = 2, #KEYS do
  if redis.call('HEXISTS', KEYS[i], ARGV[1]) == 1 then
    redis.call('HSET', KEYS[i], ARGV[1], exp)
    redis.call('SADD', KEYS[1], ARGV[i + 1])
  else
    missing[#missing + 1] = ARGV[i + 1]
  end
end
return missing
`)

// lookupScript: KEYS hash... then lastseen... (n each). Returns, per user,
// online (0/1) and last seen (” if none).
var lookupScript = redis.NewScript(luaNow + `
local n = #KEYS / 2
local out = {}
for i = 1, n do
  local online = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[i])) do
    if tonumber(v) > now then online = 1 break end
  end
  out[2*i - 1] = online
  out[2*i] = redis.call('GET', KEYS[n + i]) or ''
end
return out
`)

// sweepScript: KEYS hash, lastseen, users; ARGV user. Removes expired
// entries; if that leaves none, drops the user from the set and, if it
// removed any, sets last seen to now and returns it (unix ms), else 0.
var sweepScript = redis.NewScript(luaNow + `
local all = redis.call('HGETALL', KEYS[1])
local removed, live = 0, 0
for i = 1, #all, 2 do
  if tonumber(all[i+1]) > now then
    live = live + 1
  else
    redis.call('HDEL', KEYS[1], all[i])
    removed = removed + 1
  end
end
if live > 0 then return 0 end
redis.call('SREM', KEYS[3], ARGV[1])
if removed == 0 then return 0 end
redis.call('SET', KEYS[2], now)
return now
`)

// Connect implements pubsub.Presence.
func (b *Broker) Connect(ctx context.Context, userID, nodeID string) (bool, error) {
	n, err := connectScript.Run(ctx, b.client,
		[]string{b.hashKey(userID), b.usersKey()},
		nodeID, b.ttlMillis(), userID).Int64()
	if err != nil {
		return false, fmt.Errorf("redispubsub: presence connect: %w", err)
	}
	return n == 1, nil
}

// Disconnect implements pubsub.Presence. last is true only when this call
// removed nodeID's entry and no live entry remains, so an offline
// transition already reported (by another Disconnect or the sweeper) is
// not reported again.
func (b *Broker) Disconnect(ctx context.Context, userID, nodeID string, at time.Time) (bool, error) {
	n, err := disconnectScript.Run(ctx, b.client,
		[]string{b.hashKey(userID), b.lastSeenKey(userID), b.usersKey()},
		nodeID, at.UnixMilli(), userID).Int64()
	if err != nil {
		return false, fmt.Errorf("redispubsub: presence disconnect: %w", err)
	}
	return n == 1, nil
}

// batch bounds the keys one script call touches, so no call blocks Redis
// for long.
const batch = 500

// Lookup implements pubsub.Presence. LastSeen has millisecond precision.
func (b *Broker) Lookup(ctx context.Context, userIDs []string) (map[string]pubsub.Status, error) {
	out := make(map[string]pubsub.Status, len(userIDs))
	for start := 0; start < len(userIDs); start += batch {
		ids := userIDs[start:min(start+batch, len(userIDs))]
		keys := make([]string, 2*len(ids))
		for i, id := range ids {
			keys[i] = b.hashKey(id)
			keys[len(ids)+i] = b.lastSeenKey(id)
		}
		res, err := lookupScript.Run(ctx, b.client, keys).Slice()
		if err != nil {
			return nil, fmt.Errorf("redispubsub: presence lookup: %w", err)
		}
		if len(res) != 2*len(ids) {
			return nil, fmt.Errorf("redispubsub: presence lookup: %d results for %d users", len(res), len(ids))
		}
		for i, id := range ids {
			st := pubsub.Status{Online: res[2*i] == int64(1)}
			if s, _ := res[2*i+1].(string); s != "" {
				ms, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("redispubsub: presence lookup: last seen of %s: %w", id, err)
				}
				st.LastSeen = time.UnixMilli(ms).UTC()
			}
			out[id] = st
		}
	}
	return out, nil
}

// Refresh implements pubsub.Presence: it renews nodeID's existing entries
// of userIDs to expire PresenceTTL from now and returns the users that have
// none. Call it more often than the TTL (every TTL/3 is good).
func (b *Broker) Refresh(ctx context.Context, nodeID string, userIDs []string) ([]string, error) {
	var missing []string
	for start := 0; start < len(userIDs); start += batch {
		ids := userIDs[start:min(start+batch, len(userIDs))]
		keys := make([]string, 1, 1+len(ids))
		keys[0] = b.usersKey()
		args := make([]any, 2, 2+len(ids))
		args[0], args[1] = nodeID, b.ttlMillis()
		for _, id := range ids {
			keys = append(keys, b.hashKey(id))
			args = append(args, id)
		}
		res, err := refreshScript.Run(ctx, b.client, keys, args...).StringSlice()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("redispubsub: presence refresh: %w", err)
		}
		missing = append(missing, res...)
	}
	return missing, nil
}

// OnExpired implements pubsub.Presence: the node whose sweeper removed a
// user's last entry reports it, on the sweeper goroutine. Only brokers with
// a listener sweep, so processes without the chat role leave it to chat
// nodes.
func (b *Broker) OnExpired(fn func(userID string, lastSeen time.Time)) {
	b.expiredMu.Lock()
	b.onExpired = append(b.onExpired, fn)
	b.expiredMu.Unlock()
}

func (b *Broker) sweepInterval() time.Duration { return max(b.opt.PresenceTTL/3, 10*time.Millisecond) }

func (b *Broker) sweepLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.sweepInterval())
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.opt.PresenceTTL)
		if err := b.sweep(ctx); err != nil {
			b.log.Warn("redispubsub: presence sweep", "err", err)
		}
		cancel()
	}
}

// sweep removes expired entries and reports users left with none. One
// node sweeps per interval (a SET NX lock), so the cluster does the work
// once. A broker with no OnExpired listener (a process without the chat
// role) does not sweep: the users it removed would go offline without
// anyone telling their peers.
func (b *Broker) sweep(ctx context.Context) error {
	b.expiredMu.RLock()
	listening := len(b.onExpired) > 0
	b.expiredMu.RUnlock()
	if !listening {
		return nil
	}
	ok, err := b.client.SetNX(ctx, b.sweepLockKey(), b.opt.NodeID, b.sweepInterval()*9/10).Result()
	if err != nil || !ok {
		return err
	}
	if err := sweepScript.Load(ctx, b.client).Err(); err != nil { // for EvalSha in pipelines
		return err
	}
	var cursor uint64
	for {
		users, next, err := b.client.SScan(ctx, b.usersKey(), cursor, "", batch).Result()
		if err != nil {
			return err
		}
		if len(users) > 0 {
			pipe := b.client.Pipeline()
			cmds := make([]*redis.Cmd, len(users))
			for i, u := range users {
				cmds[i] = sweepScript.EvalSha(ctx, pipe,
					[]string{b.hashKey(u), b.lastSeenKey(u), b.usersKey()}, u)
			}
			_, _ = pipe.Exec(ctx) // errors are per command
			for i, c := range cmds {
				ms, err := c.Int64()
				if err != nil {
					return err
				}
				if ms > 0 {
					b.reportExpired(users[i], time.UnixMilli(ms).UTC())
				}
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

func (b *Broker) reportExpired(userID string, lastSeen time.Time) {
	b.expiredMu.RLock()
	fns := b.onExpired
	b.expiredMu.RUnlock()
	for _, fn := range fns {
		fn(userID, lastSeen)
	}
}
