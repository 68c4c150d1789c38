package sqlitestore

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"
)

// pruneChunk is how many sessions one write of PruneSessions deletes, so
// that sends queued behind it wait for one small batch, not for all of it.
const pruneChunk = 500

const pruneSessionsSQL = `DELETE FROM sessions WHERE rowid IN (
	SELECT rowid FROM sessions WHERE expires_at < ? OR (revoked_at > 0 AND revoked_at < ?) LIMIT ?)`

// PruneSessions deletes the sessions that expired or were revoked before
// before, pruneChunk per write.
func (s *Store) PruneSessions(ctx context.Context, before time.Time) (int64, error) {
	cutoff := millis(before)
	var total int64
	for {
		var n int64
		err := s.write(ctx, func(b *batch) error {
			res, err := b.execSQL(pruneSessionsSQL, cutoff, cutoff, pruneChunk)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sqlitestore: prune sessions: %w", err)
		}
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}

// execSQL runs an ad hoc statement (for rare ones that need no prepared
// statement of their own).
func (b *batch) execSQL(query string, args ...any) (driver.Result, error) {
	st, err := b.conn.Prepare(query)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return execStmt(st, b.bind(args))
}
