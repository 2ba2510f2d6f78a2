// Package store keeps the state llmproxy owns beyond its config file: API
// keys created through the admin API, usage records of AI requests and
// responses stored for /v1/responses.
//
// Two drivers implement Store over database/sql with one set of queries:
// SQLite (pure Go, embedded, a file beside the config; the default) and
// PostgreSQL (for many replicas sharing one database). The schema is
// versioned in code (see migrations) and brought up to date by Open.
//
// Secrets are never stored: a key is kept as the SHA-256 digest of its
// secret and a short display prefix.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
)

// ErrNotFound is wrapped by every error that reports an absent key or
// response (including a response that expired or belongs to another
// owner).
var ErrNotFound = errors.New("not found")

// ErrConflict is wrapped by the error of a write that would give two keys
// the same name or the same secret.
var ErrConflict = errors.New("conflict")

// Key is a stored API key and its rights. Lists fail closed as in the
// config file: empty grants nothing, "*" grants everything.
type Key struct {
	// ID is the key's stable identifier, "key_" and random characters.
	ID string
	// Name is unique among stored keys.
	Name  string
	Group string
	// Digest is the SHA-256 of the secret; Prefix is its first
	// characters, for display.
	Digest      [32]byte
	Prefix      string
	Models      []string
	Passthrough []string
	Instances   []string
	StorageOps  []string
	Admin       bool
	Budget      *config.Budget
	// Limits are the key's own rate limits; nil for none.
	Limits    *ratelimit.KeyLimits
	CreatedAt time.Time
	// ExpiresAt and RevokedAt are nil when not set.
	ExpiresAt *time.Time
	RevokedAt *time.Time
	// Version is the change counter value of the key's last write.
	Version int64
}

// Active reports whether the key may authenticate at now: neither revoked
// nor expired.
func (k *Key) Active(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// UsageRecord is what one AI request used. Key is the name of the key
// that made it; Status is the HTTP status the client got.
type UsageRecord struct {
	RequestID        string
	Key              string
	Group            string
	Model            string
	Instance         string
	Status           int
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	CacheWriteTokens int64
	ReasoningTokens  int64
	CostUSD          float64
	Latency          time.Duration
	Time             time.Time
}

// GroupBy values accepted by UsageQuery.
const (
	GroupByModel    = "model"
	GroupByKey      = "key"
	GroupByInstance = "instance"
	GroupByDay      = "day"
	GroupByHour     = "hour"
)

// UsageQuery selects usage records. Empty fields do not filter; From is
// inclusive and To exclusive. Limit bounds the rows returned.
type UsageQuery struct {
	Key     string
	Model   string
	From    time.Time
	To      time.Time
	GroupBy string
	Limit   int
}

// UsageGroup sums the usage records of one group. Group is the model,
// key or instance name, or the start of the day or hour in RFC 3339.
type UsageGroup struct {
	Group            string
	Requests         int64
	Errors           int64
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	CacheWriteTokens int64
	ReasoningTokens  int64
	CostUSD          float64
}

// Store is the persistent state of llmproxy. Implementations are safe for
// concurrent use by many goroutines and, for PostgreSQL, many processes.
type Store interface {
	// CreateKey inserts k, setting its Version. A name or digest already
	// used fails with an error wrapping ErrConflict.
	CreateKey(ctx context.Context, k *Key) error
	// Key returns the key with id; KeyByDigest the key whose secret has
	// the digest. Absent keys give an error wrapping ErrNotFound.
	Key(ctx context.Context, id string) (*Key, error)
	KeyByDigest(ctx context.Context, digest [32]byte) (*Key, error)
	// Keys lists every stored key, revoked ones included, oldest first.
	Keys(ctx context.Context) ([]*Key, error)
	// UpdateKey writes every field of k but ID, Digest, Prefix and
	// CreatedAt, setting its Version.
	UpdateKey(ctx context.Context, k *Key) error
	// ModifyKey reads the key with id, lets fn change it and writes it
	// back as UpdateKey does, in one transaction, so that concurrent
	// changes of the same key do not overwrite each other. An error of fn
	// is returned as it is, and nothing is written.
	ModifyKey(ctx context.Context, id string, fn func(k *Key) error) (*Key, error)
	// RevokeKey sets the key's RevokedAt (once; revoking twice keeps the
	// first time) and returns the key.
	RevokeKey(ctx context.Context, id string, at time.Time) (*Key, error)
	// KeysVersion returns the change counter of the keys: every write of
	// a key raises it, so a cache of keys is current while it is equal.
	KeysVersion(ctx context.Context) (int64, error)

	// InsertUsage writes records in one batch.
	InsertUsage(ctx context.Context, records []UsageRecord) error
	// Usage returns the records q selects, newest first.
	Usage(ctx context.Context, q UsageQuery) ([]UsageRecord, error)
	// UsageGroups sums the records q selects by q.GroupBy.
	UsageGroups(ctx context.Context, q UsageQuery) ([]UsageGroup, error)

	// PutResponse stores a response body for its owner (a key name)
	// until expires, replacing one with the same id.
	PutResponse(ctx context.Context, id, owner string, body []byte, expires time.Time) error
	// GetResponse returns a stored response body. A response that is
	// absent, expired or owned by another key gives an error wrapping
	// ErrNotFound.
	GetResponse(ctx context.Context, id, owner string) ([]byte, error)
	// DeleteResponse removes a stored response; one that is absent,
	// expired or owned by another key gives an error wrapping
	// ErrNotFound.
	DeleteResponse(ctx context.Context, id, owner string) error
	// IsNotFound reports whether err says that a key or response is
	// absent.
	IsNotFound(err error) bool
	// SweepResponses deletes the responses expired at now and returns
	// how many.
	SweepResponses(ctx context.Context, now time.Time) (int64, error)

	// Close releases the database.
	Close() error
}
