package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/chatd/chatd/store"
)

// migrations are applied in order by Open; PRAGMA user_version records how
// many have run. Never edit a released migration: append a new one.
var migrations = []string{
	// 1: the initial schema. Times are unix milliseconds; 0 means unset.
	`
CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	username      TEXT NOT NULL UNIQUE,
	display_name  TEXT NOT NULL,
	display_fold  TEXT NOT NULL, -- display_name lower-cased, for prefix search
	password_hash TEXT NOT NULL,
	created_at    INTEGER NOT NULL
);
CREATE INDEX users_display_fold ON users (display_fold);

CREATE TABLE sessions (
	id                TEXT PRIMARY KEY,
	user_id           TEXT NOT NULL REFERENCES users (id),
	refresh_hash      TEXT NOT NULL,
	prev_refresh_hash TEXT NOT NULL DEFAULT '',
	created_at        INTEGER NOT NULL,
	expires_at        INTEGER NOT NULL,
	revoked_at        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user ON sessions (user_id);

-- A conversation has an integer key k for the message rows and indexes to
-- refer to (smaller pages than its text id), and per-member counts of the
-- messages each member sent, from which unread counts are derived.
CREATE TABLE conversations (
	k          INTEGER PRIMARY KEY,
	id         TEXT NOT NULL UNIQUE, -- store.ConversationID(user_a, user_b)
	user_a     TEXT NOT NULL,        -- the lower user id
	user_b     TEXT NOT NULL,
	last_seq   INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,     -- time of the last message
	sent_a     INTEGER NOT NULL,     -- messages user_a sent
	sent_b     INTEGER NOT NULL
);

-- One row per member: its pointers, and who the peer is. read_count is the
-- number of the peer's messages with seq <= read_seq, so that the member's
-- unread count is the peer's sent count minus read_count.
CREATE TABLE conversation_members (
	user_id       TEXT NOT NULL REFERENCES users (id),
	conv          INTEGER NOT NULL REFERENCES conversations (k),
	peer_id       TEXT NOT NULL,
	read_seq      INTEGER NOT NULL DEFAULT 0,
	delivered_seq INTEGER NOT NULL DEFAULT 0,
	read_count    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, conv)
) WITHOUT ROWID;

-- No foreign key on conv: only the writer inserts messages, right after
-- finding or creating their conversation, and the check would cost a
-- lookup per message.
CREATE TABLE messages (
	rowid         INTEGER PRIMARY KEY,
	conv          INTEGER NOT NULL,
	seq           INTEGER NOT NULL,
	id            TEXT NOT NULL,
	from_id       TEXT NOT NULL,
	to_id         TEXT NOT NULL,
	text          TEXT NOT NULL,
	client_msg_id TEXT, -- NULL when the sender gave none (no idempotency)
	created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX messages_seq ON messages (conv, seq);
CREATE UNIQUE INDEX messages_client ON messages (from_id, client_msg_id);
`,
	// 2: look-alike keys of the names (store.User.UsernameKey, DisplayNameKey);
	// '' for the accounts that existed before, which match nothing.
	`
ALTER TABLE users ADD COLUMN username_key TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN display_key  TEXT NOT NULL DEFAULT '';
CREATE INDEX users_username_key ON users (username_key);
CREATE INDEX users_display_key  ON users (display_key);
`,
	// 3: the session list (last use, user agent), the refresh-token
	// generation, and messages erased with their sender's account.
	`
ALTER TABLE sessions ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
`,
	// 4: blocks (store.Privacy); contacts come from conversations.sent_a/sent_b.
	`
CREATE TABLE blocks (
	user_id    TEXT NOT NULL,
	blocked_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (user_id, blocked_id)
) WITHOUT ROWID;
CREATE INDEX blocks_blocked ON blocks (blocked_id);
`,
	// 5: message events (store.Message Kind, ReplyTo, Target, Emoji) and a
	// text message's current state (EditedAt, Reactions and Attachments as
	// JSON, '' for none); last_text_seq is the seq of the last text message,
	// the conversation's last_message (events move only last_seq).
	`
ALTER TABLE messages ADD COLUMN kind        TEXT    NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN reply_to    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN target      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN emoji       TEXT    NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN edited_at   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN reactions   TEXT    NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN attachments TEXT    NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN last_text_seq INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET last_text_seq = last_seq;
`,
	// 6: attachments (store.Attachments; the blobs are files in
	// Options.AttachmentDir). conversation_id is '' until a message
	// references the upload, '~' once a prune or a deletion claimed it.
	`
CREATE TABLE attachments (
	id              TEXT PRIMARY KEY,
	uploader_id     TEXT NOT NULL,
	name            TEXT NOT NULL,
	type            TEXT NOT NULL,
	size            INTEGER NOT NULL DEFAULT 0,
	created_at      INTEGER NOT NULL,
	complete        INTEGER NOT NULL DEFAULT 0,
	conversation_id TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX attachments_uploader ON attachments (uploader_id, created_at);
CREATE INDEX attachments_conversation ON attachments (conversation_id, created_at);
`,
	// 7: Web Push subscriptions and muted conversations (store.Notifications).
	`
CREATE TABLE push_subscriptions (
	endpoint   TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL,
	p256dh     TEXT NOT NULL,
	auth       TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id, created_at);
CREATE TABLE mutes (
	user_id TEXT NOT NULL,
	peer_id TEXT NOT NULL,
	until   INTEGER NOT NULL,
	PRIMARY KEY (user_id, peer_id)
) WITHOUT ROWID;
`,
	// 8: people search by the start of any word (store.SearchKeys): one row
	// per key of a user. Open fills it for the users that existed before
	// (backfills names the work left, deleted once done).
	`
CREATE TABLE user_search (
	key     TEXT NOT NULL,
	user_id TEXT NOT NULL,
	PRIMARY KEY (key, user_id)
) WITHOUT ROWID;
CREATE INDEX user_search_user ON user_search (user_id);
CREATE TABLE backfills (name TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT INTO backfills (name) VALUES ('user_search');
`,
	// 9: the session that made a push subscription (store.PushSubscription.SessionID).
	`
ALTER TABLE push_subscriptions ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
`,
}

// backfillSearchKeys fills user_search for the users stored before it
// existed, once (migration 8 leaves a row in backfills until it is done).
func backfillSearchKeys(ctx context.Context, db *sql.DB) error {
	var pending int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM backfills WHERE name = 'user_search'`).Scan(&pending); err != nil {
		return fmt.Errorf("backfill search keys: %w", err)
	}
	if pending == 0 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("backfill search keys: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `SELECT id, username, display_name FROM users`)
	if err != nil {
		return fmt.Errorf("backfill search keys: %w", err)
	}
	type user struct{ id, username, display string }
	var users []user
	for rows.Next() {
		var u user
		if err := rows.Scan(&u.id, &u.username, &u.display); err != nil {
			rows.Close()
			return fmt.Errorf("backfill search keys: %w", err)
		}
		users = append(users, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("backfill search keys: %w", err)
	}
	for _, u := range users {
		for _, k := range store.SearchKeys(u.username, u.display) {
			if _, err := tx.ExecContext(ctx, writeQueries[wInsertSearchKey], k, u.id); err != nil {
				return fmt.Errorf("backfill search keys: %w", err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM backfills WHERE name = 'user_search'`); err != nil {
		return fmt.Errorf("backfill search keys: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("backfill search keys: %w", err)
	}
	return nil
}

// migrate brings the database to the latest schema version, one transaction
// per migration. It is a no-op on an up-to-date database.
func migrate(ctx context.Context, db *sql.DB) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this binary knows (%d)", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		// PRAGMA takes no bound parameters; v is an int we control.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	return nil
}
