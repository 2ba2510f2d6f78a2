package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Drivers accepted by Open.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Open connects to the database and migrates its schema. For SQLite,
// source is the database file path (created if absent; WAL journal, a
// busy timeout so that writers wait for each other); for PostgreSQL it is
// a connection URL or keyword/value string.
func Open(ctx context.Context, driver, source string) (Store, error) {
	var (
		db  *sql.DB
		d   dialect
		err error
	)
	switch driver {
	case DriverSQLite:
		if source == "" {
			return nil, errors.New("store: the sqlite driver needs a path")
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
		db, err = sql.Open("sqlite", "file:"+(&url.URL{Path: source}).EscapedPath()+"?"+q.Encode())
		d = dialect{name: DriverSQLite, blob: "BLOB", conflict: sqliteConflict}
	case DriverPostgres:
		if source == "" {
			return nil, errors.New("store: the postgres driver needs a url")
		}
		db, err = sql.Open("pgx", source)
		d = dialect{name: DriverPostgres, numbered: true, blob: "BYTEA",
			lock: "SELECT pg_advisory_xact_lock(7239540112)", conflict: postgresConflict}
		if err == nil {
			db.SetMaxOpenConns(16)
			db.SetMaxIdleConns(16)
			db.SetConnMaxIdleTime(5 * time.Minute)
		}
	default:
		return nil, fmt.Errorf("store: unknown driver %q (want %q or %q)", driver, DriverSQLite, DriverPostgres)
	}
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", driver, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connecting to %s: %w", driver, err)
	}
	if err := migrate(ctx, db, d); err != nil {
		db.Close()
		return nil, err
	}
	return &sqlStore{db: db, d: d}, nil
}

func sqliteConflict(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

func postgresConflict(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}
