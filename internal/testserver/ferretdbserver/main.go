// Command ferretdbserver runs an embedded FerretDB v1 (SQLite backend) on a
// free loopback port for chatd's mongostore tests. It lives in its own Go
// module so that FerretDB and its dependencies never enter chatd's go.mod.
//
// It prints one line, MONGODB_URI=mongodb://127.0.0.1:PORT/, once the
// listener is ready, then serves until SIGINT/SIGTERM or until its standard
// input is closed (so a test that dies never leaves it running; -watch-stdin=false
// turns that off).
//
//	go build -o ferretdbserver . && ./ferretdbserver -dir /tmp/data
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdbserver:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "directory for the SQLite databases (default: a new temporary directory, removed on exit)")
	addr := flag.String("addr", "127.0.0.1:0", "TCP address to listen on")
	verbose := flag.Bool("v", false, "log FerretDB's messages to standard error")
	watchStdin := flag.Bool("watch-stdin", true, "stop when standard input is closed (turn off to run it in the background with no input)")
	flag.Parse()

	if *dir == "" {
		tmp, err := os.MkdirTemp("", "ferretdbserver-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(tmp) }()
		*dir = tmp
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}

	logger := slog.New(slog.DiscardHandler)
	if *verbose {
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

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *addr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		return err
	}

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// MongoDBURI blocks until the listener is bound.
	fmt.Printf("MONGODB_URI=%s\n", f.MongoDBURI())

	return <-done
}
