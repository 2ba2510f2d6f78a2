package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// migrations are the schema changes in order; migration i brings the
// schema from version i to i+1. Released migrations are never edited:
// a change is a new entry. {{blob}} is replaced by the dialect's binary
// type. Times are Unix nanoseconds (UTC) in BIGINT columns, so that both
// databases compare and bucket them the same way.
var migrations = []string{
	`CREATE TABLE api_keys (
		id            TEXT PRIMARY KEY,
		name          TEXT NOT NULL UNIQUE,
		key_group     TEXT NOT NULL DEFAULT '',
		digest        TEXT NOT NULL UNIQUE,
		prefix        TEXT NOT NULL,
		models        TEXT NOT NULL DEFAULT '[]',
		passthrough   TEXT NOT NULL DEFAULT '[]',
		instances     TEXT NOT NULL DEFAULT '[]',
		storage_ops   TEXT NOT NULL DEFAULT '[]',
		admin         BOOLEAN NOT NULL DEFAULT FALSE,
		budget_usd    DOUBLE PRECISION,
		budget_period TEXT NOT NULL DEFAULT '',
		created_at    BIGINT NOT NULL,
		expires_at    BIGINT,
		revoked_at    BIGINT,
		version       BIGINT NOT NULL
	);
	CREATE TABLE key_changes (
		id      INTEGER PRIMARY KEY,
		version BIGINT NOT NULL
	);
	INSERT INTO key_changes (id, version) VALUES (1, 0);
	CREATE TABLE usage_records (
		request_id         TEXT NOT NULL,
		key_name           TEXT NOT NULL,
		key_group          TEXT NOT NULL,
		model              TEXT NOT NULL,
		instance           TEXT NOT NULL,
		status             INTEGER NOT NULL,
		prompt_tokens      BIGINT NOT NULL,
		completion_tokens  BIGINT NOT NULL,
		cached_tokens      BIGINT NOT NULL,
		cache_write_tokens BIGINT NOT NULL,
		reasoning_tokens   BIGINT NOT NULL,
		cost_usd           DOUBLE PRECISION NOT NULL,
		latency_ns         BIGINT NOT NULL,
		time               BIGINT NOT NULL
	);
	CREATE INDEX usage_records_time ON usage_records (time);
	CREATE INDEX usage_records_key_time ON usage_records (key_name, time);
	CREATE TABLE responses (
		id         TEXT PRIMARY KEY,
		owner      TEXT NOT NULL,
		body       {{blob}} NOT NULL,
		expires_at BIGINT NOT NULL
	);
	CREATE INDEX responses_expires ON responses (expires_at);`,
	// 2: a key's own rate limits, a JSON object (NULL: none).
	`ALTER TABLE api_keys ADD COLUMN limits TEXT`,
}

// migrate brings the schema up to date inside one transaction, which
// also serialises replicas migrating at once (lock is the dialect's
// statement that takes a database-wide lock for the transaction).
func migrate(ctx context.Context, db *sql.DB, d dialect) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrating: %w", err)
	}
	defer tx.Rollback()
	if d.lock != "" {
		if _, err := tx.ExecContext(ctx, d.lock); err != nil {
			return fmt.Errorf("store: migrating: taking the lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrating: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version)
	switch {
	case err == sql.ErrNoRows:
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("store: migrating: %w", err)
		}
	case err != nil:
		return fmt.Errorf("store: migrating: reading the schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("store: the database schema is version %d, newer than this llmproxy knows (%d); upgrade llmproxy", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		for _, stmt := range strings.Split(strings.ReplaceAll(migrations[i], "{{blob}}", d.blob), ";") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("store: migration %d: %w", i+1, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, d.rebind(`UPDATE schema_version SET version = ?`), len(migrations)); err != nil {
		return fmt.Errorf("store: migrating: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrating: %w", err)
	}
	return nil
}
