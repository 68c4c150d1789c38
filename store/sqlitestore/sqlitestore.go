// Package sqlitestore is chatd's embedded store: one SQLite file (through the
// pure-Go modernc.org/sqlite driver) for a single node.
//
// Writes go through group commit: one writer goroutine owns the only write
// connection, takes every pending request (up to Options.BatchMax), runs them
// in one transaction, commits once and then answers every waiter. If one
// request fails, the batch is run again with a savepoint around each
// request, so that it fails alone. With synchronous=FULL every acknowledged
// write survives a power cut, and the fsync is paid once per batch rather
// than once per message. Reads use a separate pool of read-only
// connections, which WAL mode runs beside the writer; a background
// goroutine checkpoints the log into the database file, off the writer's
// path.
//
// Besides the database file, SQLite keeps path-wal and path-shm beside it
// while the store is open (WAL mode).
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/chatd/chatd/store"
)

var (
	_ store.Store         = (*Store)(nil)
	_ store.AsyncAppender = (*Store)(nil)
)

// Options tune a Store. Zero values pick good defaults.
type Options struct {
	// BatchMax is the most write requests committed in one transaction
	// (default 512).
	BatchMax int
	// BatchWait, when positive, lets the writer linger after a batch that
	// found requests already queued (so more are arriving) for up to this
	// long, or until BatchTarget requests are gathered, before committing:
	// fewer, larger commits (one fsync each) under load. A request that
	// finds the writer idle is committed at once, so a lone sender never
	// waits. 0 (the default) commits whatever is queued at once.
	BatchWait time.Duration
	// BatchTarget ends a BatchWait linger early (default 32).
	BatchTarget int
	// QueueSize is how many write requests may wait for the writer before
	// callers block (default 4 × BatchMax).
	QueueSize int
	// ReadConns is the size of the read connection pool (default
	// max(4, GOMAXPROCS)).
	ReadConns int
	// Synchronous is SQLite's synchronous setting: "FULL" (default: a
	// committed write survives a power cut) or "NORMAL" (survives a crash of
	// the process, may lose the last commits on a power cut), or "EXTRA".
	Synchronous string
	// BusyTimeout is how long a connection waits for a lock held by another
	// process (default 5 s).
	BusyTimeout time.Duration
	// CheckpointInterval is the least time between two checkpoints (copies
	// of the write-ahead log into the database file), which a background
	// goroutine runs beside the writer after writes (default 200 ms).
	CheckpointInterval time.Duration
	// WALLimit is the size in bytes of the write-ahead log past which the
	// writer itself checkpoints and restarts it between two batches, so
	// that the log stays bounded however fast commits come (wal.go;
	// default 64 MiB).
	WALLimit int64
	// AttachmentDir is the directory of the attachment blobs (default
	// "attachments" beside the database file); it is created 0700.
	AttachmentDir string
}

func (o *Options) setDefaults() error {
	if o.BatchMax <= 0 {
		o.BatchMax = 512
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4 * o.BatchMax
	}
	if o.BatchTarget <= 0 {
		o.BatchTarget = 32
	}
	o.BatchTarget = min(o.BatchTarget, o.BatchMax)
	if o.ReadConns <= 0 {
		o.ReadConns = max(4, runtime.GOMAXPROCS(0))
	}
	switch s := strings.ToUpper(o.Synchronous); s {
	case "":
		o.Synchronous = "FULL"
	case "FULL", "NORMAL", "EXTRA":
		o.Synchronous = s
	default:
		return fmt.Errorf("invalid synchronous %q (want FULL, NORMAL or EXTRA)", o.Synchronous)
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 200 * time.Millisecond
	}
	if o.WALLimit <= 0 {
		o.WALLimit = 64 << 20
	}
	return nil
}

// Store is a store.Store on one SQLite file. Use Open.
type Store struct {
	opts   Options
	wdb    *sql.DB   // exactly one connection: wconn
	wconn  *sql.Conn // used only by the writer goroutine
	rdb    *sql.DB   // read-only pool
	rstmts [numReadStmts]*sql.Stmt
	cdb    *sql.DB // the checkpointer's connection
	pdb    *sql.DB // Ping's own read-only connection, so /readyz never queues behind rdb's readers

	ckpt     chan struct{} // the writer's "there were writes" signal, capacity 1
	ckptStop chan struct{} // closed by Close to stop the checkpointer
	ckptDone chan struct{} // closed when the checkpointer has exited

	mu     sync.RWMutex // guards closed and sending on reqs
	closed bool
	reqs   chan *writeReq
	done   chan struct{} // closed when the writer goroutine has exited

	batches atomic.Int64 // transactions the writer ran
	writes  atomic.Int64 // requests they carried
	reruns  atomic.Int64 // batches run again with savepoints (runBatch)

	walPath      string     // the write-ahead log, path-wal
	ckptMu       sync.Mutex // held by whoever checkpoints: the checkpointer, the recoverer, the writer (wal.go)
	wal          walState   // the writer's (wal.go)
	walTruncates atomic.Int64
	walFailed    atomic.Int64
	walStall     atomic.Int64 // nanoseconds

	blocks   userCache[[]string]                 // IsBlocked's answers (usercache.go)
	blockers userCache[[]string]                 // who blocks a user, for BlockedEither
	contacts userCache[[]string]                 // ContactIDs' answers
	pushSubs userCache[[]store.PushSubscription] // PushSubscriptions' answers

	dir         string        // the database file's directory
	attachDir   string        // Options.AttachmentDir (attachments.go)
	health      health        // failing writes (health.go)
	recoverDone chan struct{} // closed when the recoverer has exited
}

// errClosed is returned by every call after Close.
var errClosed = errors.New("sqlitestore: store is closed")

// Open opens (creating if needed) the database file at path, applies the
// schema migrations and starts the writer. Close releases it. The directory
// must exist. A process should open a file once: two Stores on one file stay
// correct (every batch is a BEGIN IMMEDIATE transaction) but their writers
// wait for each other's lock (Options.BusyTimeout).
func Open(path string, opts Options) (*Store, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlitestore: open: invalid database path %q", path)
	}
	if err := privateFiles(path); err != nil {
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	if opts.AttachmentDir == "" {
		opts.AttachmentDir = filepath.Join(filepath.Dir(path), "attachments")
	}
	if err := privateDir(opts.AttachmentDir); err != nil {
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	ctx := context.Background()
	busy := opts.BusyTimeout.Milliseconds()

	wq := url.Values{}
	wq.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy))
	wq.Add("_pragma", "foreign_keys(1)")
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "synchronous("+opts.Synchronous+")")
	// A restarted log's file is cut back to the limit, not below it: the
	// commits after a restart overwrite the file's blocks instead of
	// appending (a sync of an append also commits the new size through the
	// file system's journal), and the file's size is still the log's own
	// once the log passes the limit, which is what wal.go checks.
	wq.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", opts.WALLimit))
	wq.Add("_pragma", "cache_size(-16384)") // 16 MiB: the writer's working set stays cached
	// The checkpointer copies the log into the database beside the writer;
	// the writer checkpoints itself, between batches, only once the log
	// has passed WALLimit (wal.go), never inside a commit.
	wq.Add("_pragma", "wal_autocheckpoint(0)")
	wdb, err := openPool(path+"?"+wq.Encode(), 1)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, wdb); err != nil {
		_ = wdb.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	if err := backfillSearchKeys(ctx, wdb); err != nil {
		_ = wdb.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}

	wconn, err := wdb.Conn(ctx)
	if err != nil {
		_ = wdb.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}

	rq := url.Values{}
	rq.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy))
	rq.Add("_pragma", "query_only(1)")
	rdb, err := openPool(path+"?"+rq.Encode(), opts.ReadConns)
	if err != nil {
		_ = wconn.Close()
		_ = wdb.Close()
		return nil, err
	}

	cq := url.Values{}
	cq.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy))
	cq.Add("_pragma", "synchronous("+opts.Synchronous+")")
	cdb, err := openPool(path+"?"+cq.Encode(), 1)
	if err != nil {
		_ = rdb.Close()
		_ = wconn.Close()
		_ = wdb.Close()
		return nil, err
	}
	pdb, err := openPool(path+"?"+rq.Encode(), 1)
	if err != nil {
		_ = cdb.Close()
		_ = rdb.Close()
		_ = wconn.Close()
		_ = wdb.Close()
		return nil, err
	}

	s := &Store{
		opts:  opts,
		wdb:   wdb,
		wconn: wconn,
		rdb:   rdb,
		cdb:   cdb,
		pdb:   pdb,
		reqs:  make(chan *writeReq, opts.QueueSize),
		done:  make(chan struct{}),

		ckpt:     make(chan struct{}, 1),
		ckptStop: make(chan struct{}),
		ckptDone: make(chan struct{}),

		walPath:     path + "-wal",
		dir:         filepath.Dir(path),
		attachDir:   opts.AttachmentDir,
		health:      health{wake: make(chan struct{}, 1)},
		recoverDone: make(chan struct{}),
	}
	if err := s.prepare(ctx); err != nil {
		_ = s.closeDBs()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	ready := make(chan error, 1)
	go s.writer(ready)
	if err := <-ready; err != nil {
		<-s.done
		_ = s.closeDBs()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	go s.checkpointer()
	go s.recoverer()
	return s, nil
}

// openPool opens dsn with conns connections, kept open for good.
func openPool(dsn string, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// checkpointer runs a passive checkpoint after writes, at most once per
// CheckpointInterval, so that the writer's commits do not pay for it. A
// failed checkpoint (the log busy) is retried after the next writes.
func (s *Store) checkpointer() {
	defer close(s.ckptDone)
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	for {
		select {
		case <-s.ckptStop:
			return
		case <-s.ckpt:
		}
		s.ckptMu.Lock()
		_, _ = s.cdb.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		s.ckptMu.Unlock()
		pause.Reset(s.opts.CheckpointInterval)
		select {
		case <-s.ckptStop:
			pause.Stop()
			return
		case <-pause.C:
		}
	}
}

// prepare prepares the statements of the read pool.
func (s *Store) prepare(ctx context.Context) error {
	for i, q := range readQueries {
		st, err := s.rdb.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		s.rstmts[i] = st
	}
	return nil
}

func (s *Store) closeDBs() error {
	for _, st := range s.rstmts {
		if st != nil {
			_ = st.Close()
		}
	}
	err := s.rdb.Close()
	if cerr := s.cdb.Close(); cerr != nil {
		err = cerr
	}
	if perr := s.pdb.Close(); perr != nil {
		err = perr
	}
	if werr := s.wconn.Close(); werr != nil {
		err = werr
	}
	if werr := s.wdb.Close(); werr != nil {
		err = werr
	}
	return err
}

// Close waits for the pending writes, stops the writer and closes the
// database. Calls after Close fail; a second Close returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs) // the writer drains what is queued, then exits
	s.mu.Unlock()
	<-s.done
	close(s.ckptStop)
	<-s.ckptDone
	<-s.recoverDone
	if err := s.closeDBs(); err != nil {
		return fmt.Errorf("sqlitestore: close: %w", err)
	}
	return nil
}

// WriteStats returns how many transactions the writer committed (or
// tried), how many write requests they carried (writes/batches is the
// group commit's batch size, one fsync per batch) and how many batches ran
// a second time with a savepoint per request (runBatch).
func (s *Store) WriteStats() (batches, writes, reruns int64) {
	return s.batches.Load(), s.writes.Load(), s.reruns.Load()
}

// Ping reports whether the database answers, and ErrWritesFailing while
// writes fail for the disk (health.go). It asks on its own connection: a
// reconnect storm keeps every reader of the pool busy with a queue behind
// them, and a ping waiting there for readyTimeout made /readyz fail and the
// gateway eject a replica that was answering.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return errClosed
	}
	if err := s.writesFailing(); err != nil {
		return err
	}
	var one int
	if err := s.pdb.QueryRowContext(ctx, readQueries[rPing]).Scan(&one); err != nil {
		return fmt.Errorf("sqlitestore: ping: %w", wrapCtx(ctx, err))
	}
	return nil
}

// ---- helpers ----

// millis converts t to unix milliseconds; the zero time is 0.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMillis is the inverse of millis, in UTC.
func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

func isUniqueViolation(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKeyViolation(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// wrapCtx returns ctx's error when ctx ended (the driver reports an
// interrupted query in its own words), else err.
func wrapCtx(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}
