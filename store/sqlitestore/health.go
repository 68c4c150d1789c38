package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// Writes that fail for the disk (full, or an I/O error). When a batch fails
// so, the store is "failing": Ping reports ErrWritesFailing, so that
// /readyz takes the node out of rotation, and a recovery loop runs until a
// write commits again. Each round truncates the write-ahead log
// (wal_checkpoint(TRUNCATE)) and then makes a probe write. Without the
// truncation the log, which checkpoints cannot reset while the disk is full,
// grows back into whatever space is freed and writes keep failing; without
// the probe a node nobody sends to (it is not ready) would never learn that
// it recovered. Any batch that commits ends the failing state.

// ErrWritesFailing is what Ping returns (wrapped, with the last write's
// error) while writes fail for the disk.
var ErrWritesFailing = errors.New("sqlitestore: writes are failing (disk full or I/O error)")

// recoverInterval is the pause between two recovery rounds.
const recoverInterval = 250 * time.Millisecond

// health is the store's failing state.
type health struct {
	failing atomic.Pointer[error] // the last disk error while failing, nil when healthy
	wake    chan struct{}         // capacity 1: the recovery loop has work
}

// isDiskError reports whether err is SQLite failing for the disk.
func isDiskError(err error) bool {
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR:
		return true
	}
	return false
}

// noteBatch records a batch's outcome: a disk error makes the store
// failing. Only a recovery round makes it healthy again: a small write may
// commit into log space the failed one left allocated while the disk is
// still full, and readiness should not flap with it.
func (s *Store) noteBatch(errs []error) {
	for _, err := range errs {
		if err != nil && isDiskError(err) {
			if s.health.failing.Swap(&err) == nil {
				select {
				case s.health.wake <- struct{}{}:
				default:
				}
			}
			return
		}
	}
}

// writesFailing returns ErrWritesFailing with the last disk error while the
// store is failing, else nil.
func (s *Store) writesFailing() error {
	if p := s.health.failing.Load(); p != nil {
		return fmt.Errorf("%w: %v", ErrWritesFailing, *p)
	}
	return nil
}

// recoverer runs recovery rounds while the store is failing, until Close.
func (s *Store) recoverer() {
	defer close(s.recoverDone)
	t := time.NewTimer(recoverInterval)
	t.Stop()
	for {
		select {
		case <-s.ckptStop:
			return
		case <-s.health.wake:
		}
		for s.health.failing.Load() != nil {
			s.recoverRound()
			t.Reset(recoverInterval)
			select {
			case <-s.ckptStop:
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// recoverReserve is the free space the data directory must have (where
// the platform tells) before a recovery round tries its probe write.
const recoverReserve = 4 << 20

// recoverRound truncates the log and, once that worked and there is room,
// makes a probe write: PRAGMA user_version set to the version it has, which
// rewrites the database header, so that the write needs space like any
// other. When the probe commits, the store is healthy again.
func (s *Store) recoverRound() {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.BusyTimeout+time.Second)
	defer cancel()
	var busy, logFrames, done int64
	s.ckptMu.Lock()
	err := s.cdb.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done)
	s.ckptMu.Unlock()
	if err != nil || busy != 0 || logFrames != 0 {
		return // the log is still there: a probe could reuse its space
	}
	if free, ok := freeBytes(s.dir); ok && free < recoverReserve {
		return
	}
	err = s.write(ctx, func(b *batch) error {
		_, err := b.execSQL(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)))
		return err
	})
	if err == nil {
		s.health.failing.Store(nil)
	}
}
