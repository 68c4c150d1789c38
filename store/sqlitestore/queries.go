package sqlitestore

// Prepared statements of the writer, run inside batch transactions.
const (
	wInsertUser = iota
	wInsertSession
	wRotateRefresh
	wSessionState
	wRevokeSession
	wMessageByClient
	wBumpConversation
	wSetConversation
	wInsertConversation
	wInsertMember
	wInsertMessage
	wPointers
	wCountFrom
	wSetPointers
	wDeleteUser
	wSetPassword
	wEraseMessages
	wMessageAt
	wBumpEvent
	wSetState
	wInsertSearchKey
	wDeleteSearchKeys
	numWriteStmts
)

var writeQueries = [numWriteStmts]string{
	wInsertUser: `INSERT INTO users (id, username, display_name, display_fold, password_hash, created_at, username_key, display_key)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	wInsertSession: `INSERT INTO sessions (id, user_id, refresh_hash, prev_refresh_hash, created_at, expires_at, revoked_at,
		generation, last_used_at, user_agent)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	wRotateRefresh: `UPDATE sessions SET prev_refresh_hash = refresh_hash, refresh_hash = ?, expires_at = ?,
		generation = ?, last_used_at = ?
		WHERE id = ? AND refresh_hash = ? AND revoked_at = 0`,
	wSessionState:  `SELECT refresh_hash, revoked_at FROM sessions WHERE id = ?`,
	wRevokeSession: `UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at = 0`,
	wMessageByClient: `SELECT ` + messageColumns + ` FROM messages
		WHERE from_id = ? AND client_msg_id = ?`,
	// ?2 and ?3 are 1 for the sender's side (user_a or user_b), else 0.
	wBumpConversation: `UPDATE conversations
		SET last_seq = last_seq + 1, last_text_seq = last_seq + 1, updated_at = ?1, sent_a = sent_a + ?2, sent_b = sent_b + ?3
		WHERE id = ?4 RETURNING k, last_seq, sent_a, sent_b`,
	// The same for a conversation whose counters the writer holds
	// (convState): no RETURNING, and the row found by its key.
	wSetConversation: `UPDATE conversations
		SET last_seq = ?1, last_text_seq = ?1, updated_at = ?2, sent_a = ?3, sent_b = ?4
		WHERE k = ?5`,
	wInsertConversation: `INSERT INTO conversations (id, user_a, user_b, last_seq, last_text_seq, updated_at, sent_a, sent_b)
		VALUES (?, ?, ?, 1, 1, ?, ?, ?)`,
	wInsertMember: `INSERT OR IGNORE INTO conversation_members (user_id, conv, peer_id) VALUES (?, ?, ?)`,
	wInsertMessage: `INSERT INTO messages (conv, seq, id, from_id, to_id, text, client_msg_id, created_at,
		kind, reply_to, target, emoji, edited_at, reactions, attachments)
		VALUES (?, ?, ?, ?, ?, ?, nullif(?, ''), ?, ?, ?, ?, ?, ?, ?, ?)`,
	wPointers: `SELECT m.conv, m.read_seq, m.delivered_seq, m.read_count, c.last_seq
		FROM conversations c JOIN conversation_members m ON m.conv = c.k AND m.user_id = ?
		WHERE c.id = ?`,
	wCountFrom: `SELECT count(*) FROM messages WHERE conv = ? AND seq > ? AND seq <= ? AND from_id = ? AND kind = ''`,
	wSetPointers: `UPDATE conversation_members SET read_seq = ?, delivered_seq = ?, read_count = ?
		WHERE user_id = ? AND conv = ?`,
	wDeleteUser: `UPDATE users SET username = ?, display_name = ?, display_fold = ?, password_hash = '',
		username_key = '', display_key = '' WHERE id = ?`,
	wSetPassword: `UPDATE users SET password_hash = ? WHERE id = ?`,
	// messages_client's leading from_id finds them.
	wEraseMessages: `UPDATE messages SET text = '', attachments = '', reactions = '', edited_at = 0, deleted = 1
		WHERE from_id = ? AND deleted = 0`,
	// The target of an event, or the message a reply answers.
	wMessageAt: `SELECT conv, ` + messageColumns + ` FROM messages
		WHERE conv = (SELECT k FROM conversations WHERE id = ?) AND seq = ?`,
	// An event takes a seq and nothing else: not last_text_seq (the last
	// message), updated_at (activity) or the sent counts (unread, contacts).
	wBumpEvent: `UPDATE conversations SET last_seq = last_seq + 1 WHERE k = ? RETURNING last_seq`,
	// The current state of an event's target.
	wSetState: `UPDATE messages SET text = ?, edited_at = ?, deleted = ?, reactions = ?, attachments = ?
		WHERE conv = ? AND seq = ?`,
	wInsertSearchKey:  `INSERT OR IGNORE INTO user_search (key, user_id) VALUES (?, ?)`,
	wDeleteSearchKeys: `DELETE FROM user_search WHERE user_id = ?`,
}

// Prepared statements of the read pool.
const (
	rPing = iota
	rUserByID
	rUserByUsername
	rUsersByIDs
	rUserByNameKey
	rSearchUsers
	rSessionByID
	rSessionsByUser
	rMessagesBefore
	rMessagesAfter
	rConversations
	rConversation
	rPeerIDs
	rContactIDs
	rBlockedIDs
	rBlockedSorted
	rBlockersSorted
	rPushSubscriptions
	rMutedUntil
	rMutes
	numReadStmts
)

const userColumns = `id, username, display_name, password_hash, created_at, username_key, display_key`

const messageColumns = `seq, id, from_id, to_id, text, coalesce(client_msg_id, ''), created_at, deleted,
	kind, reply_to, target, emoji, edited_at, reactions, attachments`

const sessionColumns = `id, user_id, refresh_hash, prev_refresh_hash, created_at, expires_at, revoked_at,
	generation, last_used_at, user_agent`

// conversationSelect is a member's view of its conversations: m is the
// member's row, p the peer's, l the last message.
const conversationSelect = `SELECT c.id, m.peer_id, c.last_seq, c.updated_at,
		m.read_seq, m.delivered_seq, p.read_seq, p.delivered_seq,
		CASE WHEN m.user_id = c.user_a THEN c.sent_b ELSE c.sent_a END - m.read_count,
		l.seq, l.id, l.from_id, l.to_id, l.text, coalesce(l.client_msg_id, ''), l.created_at, l.deleted,
		l.kind, l.reply_to, l.target, l.emoji, l.edited_at, l.reactions, l.attachments
	FROM conversation_members m
	JOIN conversations c ON c.k = m.conv
	JOIN conversation_members p ON p.user_id = m.peer_id AND p.conv = m.conv
	LEFT JOIN messages l ON l.conv = m.conv AND l.seq = c.last_text_seq`

var readQueries = [numReadStmts]string{
	rPing:           `SELECT 1`,
	rUserByID:       `SELECT ` + userColumns + ` FROM users WHERE id = ?`,
	rUserByUsername: `SELECT ` + userColumns + ` FROM users WHERE username = ?`,
	rUsersByIDs:     `SELECT ` + userColumns + ` FROM users WHERE id IN (SELECT value FROM json_each(?))`,
	// Two IN lists, so that each column's index serves its half.
	rUserByNameKey: `SELECT ` + userColumns + ` FROM users
		WHERE id != ?1 AND (username_key IN (SELECT value FROM json_each(?2)) OR display_key IN (SELECT value FROM json_each(?2)))
		LIMIT 1`,
	// ?2..?3 is the range of strings that start with the prefix: every
	// valid UTF-8 string below prefix+"\xff"; user_search's primary key
	// serves it.
	rSearchUsers: `SELECT ` + userColumns + ` FROM users
		WHERE id != ?1 AND id IN (SELECT user_id FROM user_search WHERE key >= ?2 AND key < ?3)
		ORDER BY username LIMIT ?4`,
	rSessionByID:    `SELECT ` + sessionColumns + ` FROM sessions WHERE id = ?`,
	rSessionsByUser: `SELECT ` + sessionColumns + ` FROM sessions WHERE user_id = ?`,
	rMessagesBefore: `SELECT ` + messageColumns + ` FROM messages
		WHERE conv = (SELECT k FROM conversations WHERE id = ?) AND seq < ? ORDER BY seq DESC LIMIT ?`,
	rMessagesAfter: `SELECT ` + messageColumns + ` FROM messages
		WHERE conv = (SELECT k FROM conversations WHERE id = ?) AND seq > ? ORDER BY seq ASC LIMIT ?`,
	rConversations: conversationSelect + ` WHERE m.user_id = ? ORDER BY c.updated_at DESC, c.id`,
	rConversation: conversationSelect + ` WHERE m.user_id = ?
		AND m.conv = (SELECT k FROM conversations WHERE id = ?)`,
	rPeerIDs: `SELECT peer_id FROM conversation_members WHERE user_id = ? ORDER BY peer_id`,
	// Presence and typing read these on every connect and conversation
	// list (privacy.go): prepared, not parsed per call.
	rContactIDs: `SELECT m.peer_id FROM conversation_members m JOIN conversations c ON c.k = m.conv
		WHERE m.user_id = ? AND c.sent_a > 0 AND c.sent_b > 0 ORDER BY m.peer_id`,
	rBlockedIDs:    `SELECT blocked_id FROM blocks WHERE user_id = ? ORDER BY created_at DESC, blocked_id`,
	rBlockedSorted: `SELECT blocked_id FROM blocks WHERE user_id = ? ORDER BY blocked_id`,
	// blocks_blocked holds the primary key's user_id: it covers this, in order.
	rBlockersSorted: `SELECT user_id FROM blocks WHERE blocked_id = ? ORDER BY user_id`,
	// Push reads these for every message to a user with no open connection.
	rPushSubscriptions: `SELECT endpoint, p256dh, auth, session_id, created_at FROM push_subscriptions
		WHERE user_id = ? ORDER BY created_at, endpoint`,
	rMutedUntil: `SELECT until FROM mutes WHERE user_id = ? AND peer_id = ?`,
	// Every GET /api/conversations reads these.
	rMutes: `SELECT peer_id, until FROM mutes WHERE user_id = ?`,
}
