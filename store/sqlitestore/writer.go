package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"time"
)

// Group commit. Every write is a writeReq: a function run by the single
// writer goroutine inside the transaction of a batch. The writer talks to its
// connection through the driver interfaces directly (inside sql.Conn.Raw):
// it is the only user of that connection, and skipping database/sql's
// per-statement bookkeeping halves the CPU cost of a statement.

// writeReq is one write waiting for the writer. fn runs inside the batch
// transaction and stores its results in variables it captured; the error it
// returns (or the commit's) is sent on done, or, when callback is set
// (AppendMessageAsync), passed to callback on the writer goroutine.
type writeReq struct {
	ctx      context.Context
	fn       func(b *batch) error
	done     chan error
	callback func(err error)
}

// answer hands the request its outcome.
func (r *writeReq) answer(err error) {
	if r.callback != nil {
		r.callback(err)
		return
	}
	r.done <- err
}

// testHookBeforeFn, when a test sets it, runs on the writer just before each
// request's fn (after the request's context was checked).
var testHookBeforeFn func()

// enqueue queues req for the writer, waiting while the queue is full.
func (s *Store) enqueue(req *writeReq) error {
	if err := req.ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	select {
	case s.reqs <- req:
		return nil
	case <-req.ctx.Done():
		return req.ctx.Err()
	}
}

// write queues fn for the writer and waits until its batch committed.
func (s *Store) write(ctx context.Context, fn func(b *batch) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	if err := s.enqueue(req); err != nil {
		return err
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		// Prefer the outcome if it is there already.
		select {
		case err := <-req.done:
			return err
		default:
			return ctx.Err()
		}
	}
}

// Control statements of the writer, besides writeQueries.
const (
	cBegin = iota
	cCommit
	cRollback
	cSavepoint
	cRollbackTo
	cRelease
	numControlStmts
)

var controlQueries = [numControlStmts]string{
	cBegin:      `BEGIN IMMEDIATE`,
	cCommit:     `COMMIT`,
	cRollback:   `ROLLBACK`,
	cSavepoint:  `SAVEPOINT item`,
	cRollbackTo: `ROLLBACK TO item`,
	cRelease:    `RELEASE item`,
}

// writer runs the write loop on the write connection until reqs is closed
// and drained. It reports on ready whether it could start.
func (s *Store) writer(ready chan<- error) {
	defer close(s.done)
	started := false
	err := s.wconn.Raw(func(dc any) error {
		conn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		b := &batch{conn: conn}
		defer b.closeStmts()
		if err := b.prepare(); err != nil {
			return err
		}
		started = true
		ready <- nil
		s.writeLoop(b)
		return nil
	})
	if !started {
		ready <- err
	}
}

func (s *Store) writeLoop(b *batch) {
	reqs := make([]*writeReq, 0, s.opts.BatchMax)
	errs := make([]error, s.opts.BatchMax)
	var linger *time.Timer
	if s.opts.BatchWait > 0 {
		linger = time.NewTimer(time.Hour)
		linger.Stop()
	}
	for {
		// Requests already queued while the last batch committed mean
		// more are arriving: the batch may linger for them.
		busy := len(s.reqs) > 0
		first, ok := <-s.reqs
		if !ok {
			return
		}
		reqs = append(reqs[:0], first)
		open := s.fill(&reqs)
		if open && busy && linger != nil && len(reqs) < s.opts.BatchTarget {
			linger.Reset(s.opts.BatchWait)
		wait:
			for len(reqs) < s.opts.BatchTarget {
				select {
				case r, ok := <-s.reqs:
					if !ok {
						break wait
					}
					reqs = append(reqs, r)
					if !s.fill(&reqs) {
						break wait
					}
				case <-linger.C:
					break wait
				}
			}
			linger.Stop()
		}
		s.runBatch(b, reqs, errs[:len(reqs)])
		s.noteBatch(errs[:len(reqs)])
		s.batches.Add(1)
		s.writes.Add(int64(len(reqs)))
		select {
		case s.ckpt <- struct{}{}:
		default:
		}
		for i, r := range reqs { // in queue order (AppendMessageAsync relies on it)
			r.answer(errs[i])
			reqs[i] = nil
			errs[i] = nil
		}
		s.boundWAL(b) // between batches, after the acks (wal.go)
	}
}

// fill appends the requests queued now to reqs, up to BatchMax, and
// reports whether the queue is still open.
func (s *Store) fill(reqs *[]*writeReq) bool {
	for len(*reqs) < s.opts.BatchMax {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				return false
			}
			*reqs = append(*reqs, r)
		default:
			return true
		}
	}
	return true
}

// runBatch runs reqs in one transaction and sets errs[i] to each one's
// outcome. It first runs them all without savepoints (the common case: none
// fails); if one fails, it rolls back and runs the batch again with a
// savepoint around each request, so that only the failing ones fail.
func (s *Store) runBatch(b *batch, reqs []*writeReq, errs []error) {
	if s.tryBatch(b, reqs, errs, false) {
		return
	}
	s.reruns.Add(1)
	clear(errs)
	s.tryBatch(b, reqs, errs, true)
}

// tryBatch is one attempt of runBatch. Without savepoints it gives up (and
// returns false) when a request fails among others.
func (s *Store) tryBatch(b *batch, reqs []*writeReq, errs []error, savepoints bool) bool {
	failAll := func(err error) bool {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return true
	}
	rollback := func() {
		// If even this fails the connection is unusable; the next BEGIN
		// reports it.
		_, _ = b.control(cRollback)
		clear(b.convs)
	}
	b.careful = savepoints
	if _, err := b.control(cBegin); err != nil {
		return failAll(fmt.Errorf("begin: %w", err))
	}
	ok := 0
	for i, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if !savepoints {
			if testHookBeforeFn != nil {
				testHookBeforeFn()
			}
			if err := r.fn(b); err != nil {
				rollback()
				if ok > 0 || i < len(reqs)-1 || errors.Is(err, errMaybeRetry) {
					return false // others may succeed, or it may: retry with savepoints
				}
				errs[i] = err
				return true
			}
			ok++
			continue
		}
		if _, err := b.control(cSavepoint); err != nil {
			rollback()
			return failAll(fmt.Errorf("savepoint: %w", err))
		}
		if testHookBeforeFn != nil {
			testHookBeforeFn()
		}
		if err := r.fn(b); err != nil {
			errs[i] = err
			clear(b.convs) // it may hold what the savepoint undid
			if _, rerr := b.control(cRollbackTo); rerr != nil {
				rollback()
				return failAll(fmt.Errorf("rollback to savepoint: %w", rerr))
			}
		} else {
			ok++
		}
		if _, err := b.control(cRelease); err != nil {
			rollback()
			return failAll(fmt.Errorf("release savepoint: %w", err))
		}
	}
	if ok == 0 {
		rollback()
		return true
	}
	if _, err := b.control(cCommit); err != nil {
		rollback()
		return failAll(fmt.Errorf("commit: %w", err))
	}
	return true
}

// batch is the writer's connection with its prepared statements; request
// functions run their statements through it, inside the batch transaction.
type batch struct {
	conn  driver.Conn
	stmts [numWriteStmts]driver.Stmt
	ctl   [numControlStmts]driver.Stmt
	args  []driver.NamedValue // reused for every statement
	// careful is set while the batch runs with a savepoint per request,
	// after a first run without failed: appendMessage then looks for a
	// retry before it writes.
	careful bool
	// suspects are the senders whose messages look for a retry first in
	// every run, until the time given (appendMessage).
	suspects map[string]time.Time
	// convs holds the counters of the conversations the writer has
	// written, as the current transaction sees them, so that a message
	// sets them by the row's key instead of reading them back with
	// RETURNING (BenchmarkAppendMessage/serial: ~8 % less CPU a message).
	// Only the writer changes conversations (wBumpConversation,
	// wSetConversation, wInsertConversation, wBumpEvent, each keeping it
	// current); every ROLLBACK and ROLLBACK TO empties it, so that it never
	// holds what was undone.
	convs map[string]convState
}

// convState is a conversation row's key and counters (batch.convs).
type convState struct{ k, seq, sentA, sentB int64 }

// convsMax bounds batch.convs (about 100 bytes each); beyond it the map
// starts again: a forgotten conversation is read back once more.
const convsMax = 50_000

func (b *batch) rememberConv(id string, cs convState) {
	if b.convs == nil || len(b.convs) >= convsMax {
		b.convs = make(map[string]convState)
	}
	b.convs[id] = cs
}

func (b *batch) prepare() error {
	prep := func(q string) (driver.Stmt, error) {
		if cp, ok := b.conn.(driver.ConnPrepareContext); ok {
			return cp.PrepareContext(context.Background(), q)
		}
		return b.conn.Prepare(q)
	}
	for i, q := range writeQueries {
		st, err := prep(q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		b.stmts[i] = st
	}
	for i, q := range controlQueries {
		st, err := prep(q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		b.ctl[i] = st
	}
	return nil
}

func (b *batch) closeStmts() {
	for _, st := range b.stmts {
		if st != nil {
			_ = st.Close()
		}
	}
	for _, st := range b.ctl {
		if st != nil {
			_ = st.Close()
		}
	}
}

// bind converts args (int, int64, string, nil) to the reused argument slice.
func (b *batch) bind(args []any) []driver.NamedValue {
	b.args = b.args[:0]
	for i, a := range args {
		switch v := a.(type) {
		case int:
			a = int64(v)
		case bool:
			a = int64(0)
			if v {
				a = int64(1)
			}
		}
		b.args = append(b.args, driver.NamedValue{Ordinal: i + 1, Value: a})
	}
	return b.args
}

func execStmt(st driver.Stmt, args []driver.NamedValue) (driver.Result, error) {
	if se, ok := st.(driver.StmtExecContext); ok {
		return se.ExecContext(context.Background(), args)
	}
	return nil, errors.New("driver statement without ExecContext")
}

func queryStmt(st driver.Stmt, args []driver.NamedValue) (driver.Rows, error) {
	if sq, ok := st.(driver.StmtQueryContext); ok {
		return sq.QueryContext(context.Background(), args)
	}
	return nil, errors.New("driver statement without QueryContext")
}

// control runs one of the transaction control statements.
func (b *batch) control(i int) (driver.Result, error) {
	return execStmt(b.ctl[i], nil)
}

// exec runs write statement i.
func (b *batch) exec(i int, args ...any) (driver.Result, error) {
	return execStmt(b.stmts[i], b.bind(args))
}

// execChanged runs write statement i and reports whether it changed a row.
func (b *batch) execChanged(i int, args ...any) (bool, error) {
	res, err := b.exec(i, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// queryRow runs write statement i and returns its first row.
func (b *batch) queryRow(i int, args ...any) row {
	rows, err := queryStmt(b.stmts[i], b.bind(args))
	return firstRow(rows, err)
}

// queryRowSQL runs an ad hoc query (for tests and rare statements).
func (b *batch) queryRowSQL(query string, args ...any) row {
	st, err := b.conn.Prepare(query)
	if err != nil {
		return row{err: err}
	}
	defer st.Close()
	rows, err := queryStmt(st, b.bind(args))
	return firstRow(rows, err)
}

// row is the first row of a result, like sql.Row.
type row struct {
	vals []driver.Value
	err  error
}

func firstRow(rows driver.Rows, err error) row {
	if err != nil {
		return row{err: err}
	}
	defer rows.Close()
	vals := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(vals); err != nil {
		if err == io.EOF {
			return row{err: sql.ErrNoRows}
		}
		return row{err: err}
	}
	return row{vals: vals}
}

// Scan copies the row's columns into dest: *int64 or *string (NULL gives
// the zero value), or an sql.Scanner.
func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	if len(dest) != len(r.vals) {
		return fmt.Errorf("scan: %d destinations for %d columns", len(dest), len(r.vals))
	}
	for i, d := range dest {
		v := r.vals[i]
		switch d := d.(type) {
		case *int64:
			switch v := v.(type) {
			case int64:
				*d = v
			case nil:
				*d = 0
			default:
				return fmt.Errorf("scan: column %d is %T, want an integer", i, v)
			}
		case *string:
			switch v := v.(type) {
			case string:
				*d = v
			case []byte:
				*d = string(v)
			case nil:
				*d = ""
			default:
				return fmt.Errorf("scan: column %d is %T, want text", i, v)
			}
		case sql.Scanner: // the sql.Null* types
			if err := d.Scan(v); err != nil {
				return fmt.Errorf("scan: column %d: %w", i, err)
			}
		default:
			return fmt.Errorf("scan: unsupported destination %T", d)
		}
	}
	return nil
}
