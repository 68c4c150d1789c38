// Command ferretdbserver runs an embedded FerretDB v1 on a free loopback port
// for chatd's mongostore tests. It lives in its own Go module so that
// FerretDB and its dependencies never enter chatd's go.mod.
//
// With -postgresql it uses FerretDB's PostgreSQL backend: it creates a fresh,
// uniquely named database on that server (so parallel servers never share
// state), points FerretDB at it, and drops it on exit; databases left behind
// by a ferretdbserver that was killed are dropped by the next one. Without
// -postgresql it uses the SQLite backend in -dir, which scans whole
// collections on every query.
//
// It prints one line, MONGODB_URI=mongodb://127.0.0.1:PORT/, once the
// listener is ready, then serves until SIGINT/SIGTERM or until its standard
// input is closed (so a test that dies never leaves it running; -watch-stdin=false
// turns that off). If the PostgreSQL server cannot be reached it exits with
// status 3, so that a caller can tell that from other failures.
//
//	go build -o ferretdbserver . && ./ferretdbserver -postgresql postgres://postgres@127.0.0.1:5432/postgres
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// exitNoPostgreSQL is the exit status when the PostgreSQL server cannot be
// reached or refuses to create a database.
const exitNoPostgreSQL = 3

// errNoPostgreSQL marks the errors that exit with exitNoPostgreSQL.
var errNoPostgreSQL = errors.New("postgresql unavailable")

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdbserver:", err)
		if errors.Is(err, errNoPostgreSQL) {
			os.Exit(exitNoPostgreSQL)
		}
		os.Exit(1)
	}
}

func run() error {
	pgURL := flag.String("postgresql", "", "PostgreSQL server for FerretDB's PostgreSQL backend, e.g. postgres://postgres@127.0.0.1:5432/postgres (a fresh database is created on it and dropped on exit); empty: the SQLite backend")
	maxConns := flag.Int("pg-max-conns", 8, "most connections FerretDB opens to PostgreSQL (the server is shared by every test)")
	dir := flag.String("dir", "", "directory for the SQLite backend's databases (default: a new temporary directory, removed on exit)")
	addr := flag.String("addr", "127.0.0.1:0", "TCP address to listen on")
	verbose := flag.Bool("v", false, "log FerretDB's messages to standard error")
	logSQL := flag.Bool("log-sql", false, "with -v implied: log at debug level too, which includes every SQL statement FerretDB sends to PostgreSQL (to see which filters it pushes down)")
	watchStdin := flag.Bool("watch-stdin", true, "stop when standard input is closed (turn off to run it in the background with no input)")
	flag.Parse()

	logger := slog.New(slog.DiscardHandler)
	switch {
	case *logSQL:
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	case *verbose:
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Stop when the parent closes our standard input (or dies).
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}

	cfg := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *addr},
		Logger:   logger,
	}
	if *pgURL != "" {
		db, err := createDatabase(ctx, *pgURL, databaseName())
		if err != nil {
			return err
		}
		defer func() {
			// FerretDB has closed its pool by now; WITH (FORCE) covers the rest.
			dropCtx, dropCancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer dropCancel()
			if err := db.drop(dropCtx); err != nil {
				fmt.Fprintln(os.Stderr, "ferretdbserver:", err)
			}
		}()
		u, err := db.url(*maxConns)
		if err != nil {
			return err
		}
		cfg.Handler = "postgresql"
		cfg.PostgreSQLURL = u
	} else {
		abs, cleanup, err := sqliteDir(*dir)
		if err != nil {
			return err
		}
		defer cleanup()
		cfg.Handler = "sqlite"
		cfg.SQLiteURL = "file:" + abs + "/"
	}

	f, err := ferretdb.New(cfg)
	if err != nil {
		return err
	}

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// MongoDBURI blocks until the listener is bound.
	fmt.Printf("MONGODB_URI=%s\n", f.MongoDBURI())

	return <-done
}

// sqliteDir returns the absolute path of dir, or of a new temporary
// directory when dir is empty; cleanup removes only a directory it made.
func sqliteDir(dir string) (abs string, cleanup func(), err error) {
	cleanup = func() {}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "ferretdbserver-")
		if err != nil {
			return "", nil, err
		}
		cleanup = func() { _ = os.RemoveAll(tmp) }
		dir = tmp
	}
	if abs, err = filepath.Abs(dir); err == nil {
		err = os.MkdirAll(abs, 0o700)
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return abs, cleanup, nil
}

// databasePrefix starts the name of every database a ferretdbserver
// creates; the process id follows, so that a later server can tell which
// ones were left behind by a process that no longer runs.
const databasePrefix = "chatd_ferretdb_"

// databaseName returns a new database name, unique across processes.
func databaseName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%d_%s", databasePrefix, os.Getpid(), hex.EncodeToString(b[:]))
}
