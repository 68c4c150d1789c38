package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// database is a PostgreSQL database created for one ferretdbserver.
type database struct {
	adminURL string // the server's URL as given, for DROP DATABASE
	name     string
}

// createDatabase connects to the server at adminURL, drops the databases
// that dead ferretdbservers left behind, and creates the database name.
// An unreachable server, or one that refuses, is errNoPostgreSQL.
func createDatabase(ctx context.Context, adminURL, name string) (*database, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("%w: connect: %w", errNoPostgreSQL, err)
	}
	defer func() { _ = conn.Close(context.Background()) }()

	dropOrphans(ctx, conn)

	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return nil, fmt.Errorf("%w: create database %s: %w", errNoPostgreSQL, name, err)
	}
	// A test server needs no durability across a crash of PostgreSQL
	// (tests stop FerretDB, never PostgreSQL): commits need not wait for
	// the WAL flush.
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" SET synchronous_commit TO off"); err != nil {
		db := &database{adminURL: adminURL, name: name}
		_ = db.drop(context.Background())
		return nil, fmt.Errorf("configure database %s: %w", name, err)
	}
	db := &database{adminURL: adminURL, name: name}
	if err := db.installGINTrigger(ctx); err != nil {
		_ = db.drop(context.Background())
		return nil, err
	}
	return db, nil
}

// ginTrigger makes every index FerretDB creates usable by the queries it
// sends. FerretDB v1 turns a MongoDB index into a btree index on
// (_jsonb->'field', ...), but pushes an equality filter down as
// _jsonb->'field' @> value, which a btree index cannot serve: every query
// scanned the whole table. After each such CREATE INDEX this event trigger
// adds a GIN index on each of its expressions, which serves @> (for scalars
// and for array fields alike, so it is a superset filter exactly like
// FerretDB's own; FerretDB still applies the whole filter to what comes
// back). fastupdate is off: a pending list would be scanned by every query
// until the next vacuum, which brings the linear cost back.
const ginTrigger = `
CREATE FUNCTION chatd_ferretdb_gin() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE
	cmd record;
	idx record;
	expr text;
BEGIN
	FOR cmd IN SELECT objid FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE INDEX' LOOP
		SELECT i.indexrelid, i.indnkeyatts, t.relname AS table_name, n.nspname AS schema_name
		INTO idx
		FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_am am ON am.oid = c.relam
		JOIN pg_class t ON t.oid = i.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE i.indexrelid = cmd.objid AND am.amname = 'btree' AND t.relname NOT LIKE '\_ferretdb\_%';
		CONTINUE WHEN NOT FOUND;
		-- One GIN index per field: a query's equalities combine them (BitmapAnd).
		FOR k IN 1..idx.indnkeyatts LOOP
			expr := pg_get_indexdef(idx.indexrelid, k, false);
			EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin ((%s)) WITH (fastupdate = off)',
				left(idx.table_name, 40) || '_' || left(md5(expr), 12) || '_gin', idx.schema_name, idx.table_name, expr);
		END LOOP;
	END LOOP;
END
$fn$;
CREATE EVENT TRIGGER chatd_ferretdb_gin ON ddl_command_end WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION chatd_ferretdb_gin();
`

// installGINTrigger installs ginTrigger in the database (event triggers
// are per database; creating one needs a superuser).
func (d *database) installGINTrigger(ctx context.Context) error {
	u, err := d.url(0)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return fmt.Errorf("gin trigger: connect: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, ginTrigger); err != nil {
		return fmt.Errorf("gin trigger: %w", err)
	}
	return nil
}

// dropOrphans drops the databases of ferretdbservers whose process is gone
// (killed before they could drop their own). Without FORCE: a database
// someone is connected to stays. Errors only leave a database behind.
func dropOrphans(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, databasePrefix)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range names {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(name, databasePrefix), "_")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue // not ours, or its process still runs
		}
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize())
	}
}

// url returns the URL of the database; with maxConns > 0, for FerretDB's
// pool, capped at maxConns connections. On a loopback server without an
// sslmode of the caller's it turns TLS off: pgx's default (prefer) would
// encrypt every query of FerretDB's to a server on the same machine,
// which measured 12 % of FerretDB's CPU under chatd's load (and the
// server's side on top), for nothing a test needs.
func (d *database) url(maxConns int) (string, error) {
	u, err := url.Parse(d.adminURL)
	if err != nil {
		return "", fmt.Errorf("postgresql url: %w", err)
	}
	u.Path = "/" + d.name
	q := u.Query()
	if maxConns > 0 {
		q.Set("pool_max_conns", strconv.Itoa(maxConns))
	}
	if ip := net.ParseIP(u.Hostname()); q.Get("sslmode") == "" && (u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()) {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// drop drops the database, disconnecting whoever is still connected.
func (d *database) drop(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, d.adminURL)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", d.name, err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", d.name, err)
	}
	return nil
}
