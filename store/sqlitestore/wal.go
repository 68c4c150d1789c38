package sqlitestore

import (
	"fmt"
	"os"
	"time"
)

// The write-ahead log's bound. The background checkpointer (PASSIVE, on its
// own connection) copies the log into the database file beside the writer,
// but SQLite restarts the log (writes it from its head again) only for a
// write transaction that begins when everything was copied and no reader
// still reads from the log. A writer that never pauses begins each batch
// right after its last commit, before the checkpointer has caught up, so
// under sustained commits the log grows without bound (by ~64 MB/s on
// tmpfs). Hence, between batches, when the -wal file has passed
// Options.WALLimit, the writer itself runs wal_checkpoint(RESTART) on its
// own connection: it holds no transaction then and is the only writer, so
// the checkpoint copies what is left and waits for the readers of the log
// to finish; the next batch begins at the head of the log, overwriting the
// file, and SQLite cuts the file to journal_size_limit (the limit itself)
// as it does, so the file is past the limit exactly when the log is. (Cut
// to half the limit, half of each cycle's commits appended to the file,
// whose syncs also commit its size: TestWALRestartKeepsFile.) RESTART, not
// TRUNCATE: truncating the whole file made each bound a stall of ~117 ms
// at 64 MiB (the file's blocks freed, then allocated again by the next
// commits), restarting ~12-15 ms (BenchmarkAppendLinger/paced2000, load
// average 8, 352 against 44-47 ms of stall in 10 s). It waits for a background checkpoint in progress first (the same
// lock), and for the readers still in the log for at most walTruncateWait
// after its first try; a checkpoint that could not truncate the log fails
// no write: the writer carries on and tries again once the log has grown
// by another 1/walRetryGrowth of the limit. The waiters of a batch are
// answered before the check, so the stall falls on the requests that
// arrive meanwhile, never between a commit and its ack; synchronous=FULL
// is unchanged. When the writer pauses between batches the background
// checkpoints restart the log and this does not run; on tmpfs, or a disk
// slow enough that requests are always queued, it does (figures in
// docs/reliability.md).

// walTruncateWait bounds how long the writer's checkpoint waits for the
// readers still reading from the log, after its first try.
const walTruncateWait = 50 * time.Millisecond

// walTryWait is the busy timeout of each try within walTruncateWait.
const walTryWait = time.Millisecond

// walRetryGrowth is the fraction of Options.WALLimit the log must grow by
// after a checkpoint that could not truncate it before the writer tries
// again.
const walRetryGrowth = 4 // a quarter

// walStatEvery is how often at most the writer looks at the log's size: a
// stat after every batch of one message was ~5 % of its CPU
// (BenchmarkAppendMessage/serial), and the log grows by at most ~64 KB in
// a millisecond (tmpfs), a sliver of any useful limit.
const walStatEvery = time.Millisecond

// walState is the writer's bookkeeping for the bound; only the writer
// goroutine touches it.
type walState struct {
	retryAt  int64     // the -wal size at which to try again after a failure; 0: at the limit
	statNext time.Time // when the log's size may be looked at again
}

// boundWAL runs on the writer between two batches: when the log has passed
// the limit it checkpoints and truncates it (see above).
func (s *Store) boundWAL(b *batch) {
	now := time.Now()
	if now.Before(s.wal.statNext) {
		return
	}
	s.wal.statNext = now.Add(walStatEvery)
	fi, err := os.Stat(s.walPath)
	if err != nil {
		return // no log yet (or just truncated and not written since)
	}
	size := fi.Size()
	if size <= s.opts.WALLimit || size < s.wal.retryAt {
		return
	}
	start := time.Now()
	// Waiting for a background checkpoint in progress costs no more than
	// the copy it does (of a log this size), and it holds the lock the
	// truncation needs: skipping instead let the log grow for as long as
	// it ran.
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	ok := b.restartWAL(s.opts.BusyTimeout)
	s.walStall.Add(int64(time.Since(start)))
	if ok {
		s.walTruncates.Add(1)
		s.wal.retryAt = 0
		return
	}
	s.walFailed.Add(1)
	s.wal.retryAt = size + s.opts.WALLimit/walRetryGrowth
}

// restartWAL runs wal_checkpoint(RESTART) on the writer's connection
// under a busy timeout of walTryWait, and again until walTruncateWait has
// passed since the first try (which copies the log and syncs the database
// file, however long the disk takes), then restores busy (the connection's
// own, for other processes' locks). It reports whether the log was copied
// and truncated.
//
// Short tries rather than one long wait: a checkpoint waiting for a
// reader's slot in the log waits for the slot, not for that reader, and
// under steady reads the slot is held by one reader after another (each
// already reading past what is to be copied); a new try sees the slots as
// they are now. Measured with one reader in a loop
// (TestWALBoundedUnderSustainedWrites, load average 8-12): one wait of 50
// or 200 ms failed a third of the tries, and so did 1 ms tries for 50 ms
// counted from the first try's start (its copy and fsync took 10-30 ms of
// it); counted after the first try, none failed.
func (b *batch) restartWAL(busy time.Duration) bool {
	if _, err := b.execSQL(fmt.Sprintf("PRAGMA busy_timeout = %d", walTryWait.Milliseconds())); err != nil {
		return false
	}
	defer func() {
		// If even this fails the connection is unusable; the next BEGIN
		// reports it.
		_, _ = b.execSQL(fmt.Sprintf("PRAGMA busy_timeout = %d", busy.Milliseconds()))
	}()
	var deadline time.Time // walTruncateWait after the first try, which copies the log
	for {
		var busyFlag, logFrames, copied int64
		if err := b.queryRowSQL("PRAGMA wal_checkpoint(RESTART)").Scan(&busyFlag, &logFrames, &copied); err != nil {
			return false
		}
		if busyFlag == 0 && copied == logFrames {
			return true
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(walTruncateWait)
		} else if time.Now().After(deadline) {
			return false
		}
	}
}

// WALStats returns how often the writer restarted the write-ahead log
// because it had passed Options.WALLimit, how often it tried and could not
// (readers still in the log), and the time its writes stood still for
// both: zero while the background checkpointer keeps up.
func (s *Store) WALStats() (truncates, failed int64, stall time.Duration) {
	return s.walTruncates.Load(), s.walFailed.Load(), time.Duration(s.walStall.Load())
}
