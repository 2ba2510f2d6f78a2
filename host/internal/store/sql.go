package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
)

// dialect is what differs between the databases.
type dialect struct {
	name string
	// numbered placeholders ($1) instead of ?.
	numbered bool
	// blob is the binary column type.
	blob string
	// lock takes a database-wide lock for the current transaction.
	lock string
	// conflict reports whether err is a unique constraint violation.
	conflict func(err error) bool
}

// rebind rewrites ? placeholders for the dialect. Queries here carry no
// ? inside literals.
func (d dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// sqlStore implements Store on database/sql.
type sqlStore struct {
	db *sql.DB
	d  dialect
}

var _ Store = (*sqlStore)(nil)

const keyColumns = `id, name, key_group, digest, prefix, models, passthrough, instances, storage_ops, admin,
	budget_usd, budget_period, created_at, expires_at, revoked_at, version, limits`

func (s *sqlStore) q(query string) string { return s.d.rebind(query) }

// bump raises the key change counter inside tx and returns its new value.
func (s *sqlStore) bump(ctx context.Context, tx *sql.Tx) (int64, error) {
	var v int64
	if err := tx.QueryRowContext(ctx, `UPDATE key_changes SET version = version + 1 WHERE id = 1 RETURNING version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: raising the key version: %w", err)
	}
	return v, nil
}

func (s *sqlStore) CreateKey(ctx context.Context, k *Key) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: creating key: %w", err)
	}
	defer tx.Rollback()
	v, err := s.bump(ctx, tx)
	if err != nil {
		return err
	}
	lists, err := encodeLists(k)
	if err != nil {
		return err
	}
	usd, period := budgetColumns(k.Budget)
	limits, err := limitsColumn(k.Limits)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO api_keys (`+keyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		k.ID, k.Name, k.Group, hex.EncodeToString(k.Digest[:]), k.Prefix, lists[0], lists[1], lists[2], lists[3], k.Admin,
		usd, period, nanos(k.CreatedAt), nullNanos(k.ExpiresAt), nullNanos(k.RevokedAt), v, limits)
	if err != nil {
		if s.d.conflict(err) {
			return fmt.Errorf("store: a key with this name or secret exists: %w", ErrConflict)
		}
		return fmt.Errorf("store: creating key: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: creating key: %w", err)
	}
	k.Version = v
	return nil
}

func (s *sqlStore) Key(ctx context.Context, id string) (*Key, error) {
	return s.oneKey(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = ?`, id)
}

func (s *sqlStore) KeyByDigest(ctx context.Context, digest [32]byte) (*Key, error) {
	return s.oneKey(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE digest = ?`, hex.EncodeToString(digest[:]))
}

func (s *sqlStore) oneKey(ctx context.Context, query string, arg any) (*Key, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, s.q(query), arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: key: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading key: %w", err)
	}
	return k, nil
}

func (s *sqlStore) Keys(ctx context.Context) ([]*Key, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: listing keys: %w", err)
	}
	defer rows.Close()
	var keys []*Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("store: listing keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: listing keys: %w", err)
	}
	return keys, nil
}

func (s *sqlStore) UpdateKey(ctx context.Context, k *Key) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: updating key: %w", err)
	}
	defer tx.Rollback()
	if err := s.update(ctx, tx, k); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: updating key: %w", err)
	}
	return nil
}

func (s *sqlStore) ModifyKey(ctx context.Context, id string, fn func(k *Key) error) (*Key, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: updating key: %w", err)
	}
	defer tx.Rollback()
	// The counter row is locked first, as by every key write, so that
	// the key read here cannot change before the write.
	v, err := s.bump(ctx, tx)
	if err != nil {
		return nil, err
	}
	k, err := scanKey(tx.QueryRowContext(ctx, s.q(`SELECT `+keyColumns+` FROM api_keys WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: key %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading key: %w", err)
	}
	if err := fn(k); err != nil {
		return nil, err
	}
	k.ID = id
	if err := s.write(ctx, tx, k, v); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: updating key: %w", err)
	}
	k.Version = v
	return k, nil
}

// update writes k inside tx, raising the change counter.
func (s *sqlStore) update(ctx context.Context, tx *sql.Tx, k *Key) error {
	v, err := s.bump(ctx, tx)
	if err != nil {
		return err
	}
	if err := s.write(ctx, tx, k, v); err != nil {
		return err
	}
	k.Version = v
	return nil
}

// write stores the fields of k at version v.
func (s *sqlStore) write(ctx context.Context, tx *sql.Tx, k *Key, v int64) error {
	lists, err := encodeLists(k)
	if err != nil {
		return err
	}
	usd, period := budgetColumns(k.Budget)
	limits, err := limitsColumn(k.Limits)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE api_keys SET name = ?, key_group = ?, models = ?, passthrough = ?,
		instances = ?, storage_ops = ?, admin = ?, budget_usd = ?, budget_period = ?, expires_at = ?, revoked_at = ?,
		version = ?, limits = ? WHERE id = ?`),
		k.Name, k.Group, lists[0], lists[1], lists[2], lists[3], k.Admin, usd, period,
		nullNanos(k.ExpiresAt), nullNanos(k.RevokedAt), v, limits, k.ID)
	if err != nil {
		if s.d.conflict(err) {
			return fmt.Errorf("store: a key with this name exists: %w", ErrConflict)
		}
		return fmt.Errorf("store: updating key: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: key %q: %w", k.ID, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) RevokeKey(ctx context.Context, id string, at time.Time) (*Key, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: revoking key: %w", err)
	}
	defer tx.Rollback()
	v, err := s.bump(ctx, tx)
	if err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?), version = ? WHERE id = ?`),
		nanos(at), v, id)
	if err != nil {
		return nil, fmt.Errorf("store: revoking key: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return nil, fmt.Errorf("store: key %q: %w", id, ErrNotFound)
	}
	k, err := scanKey(tx.QueryRowContext(ctx, s.q(`SELECT `+keyColumns+` FROM api_keys WHERE id = ?`), id))
	if err != nil {
		return nil, fmt.Errorf("store: revoking key: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: revoking key: %w", err)
	}
	return k, nil
}

func (s *sqlStore) KeysVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM key_changes WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: reading the key version: %w", err)
	}
	return v, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanKey(row scanner) (*Key, error) {
	var (
		k                Key
		digest           string
		lists            [4]string
		usd              sql.NullFloat64
		period           string
		created          int64
		expires, revoked sql.NullInt64
		limits           sql.NullString
	)
	if err := row.Scan(&k.ID, &k.Name, &k.Group, &digest, &k.Prefix, &lists[0], &lists[1], &lists[2], &lists[3], &k.Admin,
		&usd, &period, &created, &expires, &revoked, &k.Version, &limits); err != nil {
		return nil, err
	}
	if b, err := hex.DecodeString(digest); err != nil || len(b) != 32 {
		return nil, fmt.Errorf("key %q has a malformed digest", k.ID)
	} else {
		copy(k.Digest[:], b)
	}
	for i, dst := range []*[]string{&k.Models, &k.Passthrough, &k.Instances, &k.StorageOps} {
		if err := json.Unmarshal([]byte(lists[i]), dst); err != nil {
			return nil, fmt.Errorf("key %q has a malformed list: %w", k.ID, err)
		}
	}
	if usd.Valid {
		k.Budget = &config.Budget{USD: usd.Float64, Period: period}
	}
	if limits.Valid {
		k.Limits = new(ratelimit.KeyLimits)
		if err := json.Unmarshal([]byte(limits.String), k.Limits); err != nil {
			return nil, fmt.Errorf("key %q has malformed limits: %w", k.ID, err)
		}
	}
	k.CreatedAt = time.Unix(0, created).UTC()
	k.ExpiresAt = fromNullNanos(expires)
	k.RevokedAt = fromNullNanos(revoked)
	return &k, nil
}

func encodeLists(k *Key) ([4]string, error) {
	var out [4]string
	for i, l := range [][]string{k.Models, k.Passthrough, k.Instances, k.StorageOps} {
		if l == nil {
			l = []string{}
		}
		b, err := json.Marshal(l)
		if err != nil {
			return out, fmt.Errorf("store: encoding key lists: %w", err)
		}
		out[i] = string(b)
	}
	return out, nil
}

func budgetColumns(b *config.Budget) (sql.NullFloat64, string) {
	if b == nil {
		return sql.NullFloat64{}, ""
	}
	return sql.NullFloat64{Float64: b.USD, Valid: true}, b.Period
}

// limitsColumn encodes a key's limits as JSON; none (nil or all zero)
// is NULL.
func limitsColumn(l *ratelimit.KeyLimits) (sql.NullString, error) {
	if l.Empty() {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("store: encoding key limits: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func nullNanos(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func fromNullNanos(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.Unix(0, n.Int64).UTC()
	return &t
}

func (s *sqlStore) InsertUsage(ctx context.Context, records []UsageRecord) error {
	if len(records) == 0 {
		return nil
	}
	const cols = 14
	// Batches stay under the parameter limits of both databases.
	const perStatement = 500
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: writing usage: %w", err)
	}
	defer tx.Rollback()
	for len(records) > 0 {
		batch := records[:min(perStatement, len(records))]
		records = records[len(batch):]
		var b strings.Builder
		b.WriteString(`INSERT INTO usage_records (request_id, key_name, key_group, model, instance, status, prompt_tokens,
			completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_usd, latency_ns, time) VALUES `)
		args := make([]any, 0, cols*len(batch))
		for i, r := range batch {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
			args = append(args, r.RequestID, r.Key, r.Group, r.Model, r.Instance, r.Status, r.PromptTokens,
				r.CompletionTokens, r.CachedTokens, r.CacheWriteTokens, r.ReasoningTokens, r.CostUSD,
				int64(r.Latency), nanos(r.Time))
		}
		if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
			return fmt.Errorf("store: writing usage: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: writing usage: %w", err)
	}
	return nil
}

// where builds the filter of q.
func (q UsageQuery) where() (string, []any) {
	var conds []string
	var args []any
	if q.Key != "" {
		conds = append(conds, "key_name = ?")
		args = append(args, q.Key)
	}
	if q.Model != "" {
		conds = append(conds, "model = ?")
		args = append(args, q.Model)
	}
	if !q.From.IsZero() {
		conds = append(conds, "time >= ?")
		args = append(args, nanos(q.From))
	}
	if !q.To.IsZero() {
		conds = append(conds, "time < ?")
		args = append(args, nanos(q.To))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func (q UsageQuery) limit() int {
	if q.Limit <= 0 {
		return 1000
	}
	return q.Limit
}

func (s *sqlStore) Usage(ctx context.Context, q UsageQuery) ([]UsageRecord, error) {
	where, args := q.where()
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT request_id, key_name, key_group, model, instance, status, prompt_tokens,
		completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_usd, latency_ns, time
		FROM usage_records`+where+` ORDER BY time DESC LIMIT `+strconv.Itoa(q.limit())), args...)
	if err != nil {
		return nil, fmt.Errorf("store: reading usage: %w", err)
	}
	defer rows.Close()
	out := []UsageRecord{}
	for rows.Next() {
		var r UsageRecord
		var latency, t int64
		if err := rows.Scan(&r.RequestID, &r.Key, &r.Group, &r.Model, &r.Instance, &r.Status, &r.PromptTokens,
			&r.CompletionTokens, &r.CachedTokens, &r.CacheWriteTokens, &r.ReasoningTokens, &r.CostUSD, &latency, &t); err != nil {
			return nil, fmt.Errorf("store: reading usage: %w", err)
		}
		r.Latency = time.Duration(latency)
		r.Time = time.Unix(0, t).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading usage: %w", err)
	}
	return out, nil
}

// bucket is the length of a day or hour group in nanoseconds.
var bucket = map[string]int64{GroupByDay: int64(24 * time.Hour), GroupByHour: int64(time.Hour)}

func (s *sqlStore) UsageGroups(ctx context.Context, q UsageQuery) ([]UsageGroup, error) {
	var expr string
	switch q.GroupBy {
	case GroupByModel:
		expr = "model"
	case GroupByKey:
		expr = "key_name"
	case GroupByInstance:
		expr = "instance"
	case GroupByDay, GroupByHour:
		// Integer division floors times after 1970, the only ones
		// recorded.
		expr = "CAST(time / " + strconv.FormatInt(bucket[q.GroupBy], 10) + " AS TEXT)"
	default:
		return nil, fmt.Errorf("store: unknown usage grouping %q", q.GroupBy)
	}
	where, args := q.where()
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+expr+` AS g, CAST(COUNT(*) AS BIGINT),
		CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT),
		CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT),
		CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT),
		CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION)
		FROM usage_records`+where+` GROUP BY g ORDER BY g LIMIT `+strconv.Itoa(q.limit())), args...)
	if err != nil {
		return nil, fmt.Errorf("store: summing usage: %w", err)
	}
	defer rows.Close()
	out := []UsageGroup{}
	for rows.Next() {
		var g UsageGroup
		if err := rows.Scan(&g.Group, &g.Requests, &g.Errors, &g.PromptTokens, &g.CompletionTokens, &g.CachedTokens,
			&g.CacheWriteTokens, &g.ReasoningTokens, &g.CostUSD); err != nil {
			return nil, fmt.Errorf("store: summing usage: %w", err)
		}
		if size, ok := bucket[q.GroupBy]; ok {
			n, err := strconv.ParseInt(g.Group, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("store: summing usage: bucket %q: %w", g.Group, err)
			}
			g.Group = time.Unix(0, n*size).UTC().Format(time.RFC3339)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: summing usage: %w", err)
	}
	return out, nil
}

func (s *sqlStore) PutResponse(ctx context.Context, id, owner string, body []byte, expires time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO responses (id, owner, body, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, body = excluded.body, expires_at = excluded.expires_at`),
		id, owner, body, nanos(expires))
	if err != nil {
		return fmt.Errorf("store: storing response: %w", err)
	}
	return nil
}

func (s *sqlStore) GetResponse(ctx context.Context, id, owner string) ([]byte, error) {
	var body []byte
	err := s.db.QueryRowContext(ctx, s.q(`SELECT body FROM responses WHERE id = ? AND owner = ? AND expires_at > ?`),
		id, owner, nanos(time.Now())).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: response %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading response: %w", err)
	}
	return body, nil
}

func (s *sqlStore) DeleteResponse(ctx context.Context, id, owner string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM responses WHERE id = ? AND owner = ? AND expires_at > ?`),
		id, owner, nanos(time.Now()))
	if err != nil {
		return fmt.Errorf("store: deleting response: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: response %q: %w", id, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

func (s *sqlStore) SweepResponses(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM responses WHERE expires_at <= ?`), nanos(now))
	if err != nil {
		return 0, fmt.Errorf("store: sweeping responses: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (s *sqlStore) Close() error { return s.db.Close() }
