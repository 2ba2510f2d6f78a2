package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// listFields are the object attributes a listing asks for.
var listFields = []string{"Name", "Size", "Etag", "ContentType", "Updated", "Metadata"}

// List implements storage.Storage.
//
// GCS pages do not merge objects and common prefixes into one sorted
// sequence, and backends differ in how they count prefixes against the
// page size and whether they repeat them on later pages. List therefore
// keeps its own cursor: the page token names the last entry returned, the
// next call lists from there with StartOffset, and each page holds at most
// MaxKeys entries in key order, none of them returned before.
func (s *Store) List(ctx context.Context, req *storage.ListRequest) (*storage.ListResult, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	cur, err := decodeCursor(req.PageToken)
	if err != nil {
		return nil, err
	}
	limit := req.MaxKeys
	if limit <= 0 {
		limit = storage.DefaultMaxKeys
	}
	q := &gcs.Query{Prefix: req.Prefix, Delimiter: req.Delimiter, StartOffset: cur.start(req.Delimiter)}
	if err := q.SetAttrSelection(listFields); err != nil {
		return nil, fmt.Errorf("gcs list %s: %w", req.Bucket, err)
	}
	pager := iterator.NewPager(b.client.Bucket(req.Bucket).Objects(ctx, q), limit, "")
	var m merger
	m.after = cur
	for {
		var batch []*gcs.ObjectAttrs
		token, err := pager.NextPage(&batch)
		if err != nil {
			return nil, mapError(err, opList, req.Bucket, "")
		}
		m.add(batch, token == "")
		if token == "" || m.known() > limit {
			break
		}
	}
	return m.page(req.Bucket, limit), nil
}

// cursor is the last entry a page returned; the zero value is the start.
type cursor struct {
	name   string
	prefix bool
}

// after reports whether an entry comes after c in the listing.
func (c cursor) after(e entry) bool {
	return c.name == "" || e.name > c.name && !(c.prefix && strings.HasPrefix(e.name, c.name))
}

// start is the StartOffset that lists from just after c: the cursor's own
// name for an object (it is filtered out), and the first name past every
// key under a common prefix.
func (c cursor) start(delimiter string) string {
	if !c.prefix || delimiter == "" {
		return c.name
	}
	base := strings.TrimSuffix(c.name, delimiter)
	d := []byte(delimiter)
	if d[len(d)-1] == 0xff {
		return c.name
	}
	d[len(d)-1]++
	return base + string(d)
}

// encodeCursor makes a page token: a kind byte and the name, base64url.
func encodeCursor(c cursor) string {
	kind := "o"
	if c.prefix {
		kind = "p"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(kind + c.name))
}

// decodeCursor reads a page token made by encodeCursor.
func decodeCursor(token string) (cursor, error) {
	if token == "" {
		return cursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < 2 || (raw[0] != 'o' && raw[0] != 'p') {
		return cursor{}, openai.InvalidRequest("page_token", "invalid page token: pass the next_page_token of the previous page")
	}
	return cursor{name: string(raw[1:]), prefix: raw[0] == 'p'}, nil
}

// entry is one object or common prefix of a listing.
type entry struct {
	name  string
	attrs *gcs.ObjectAttrs
}

// merger collects backend pages and knows which entries are certain: all
// of them once the backend is done, otherwise those up to the last object
// received (or the last prefix when a page held only prefixes). Later
// backend pages never add an entry at or before that bound.
type merger struct {
	after   cursor
	entries map[string]entry
	bound   string
	done    bool
}

func (m *merger) add(batch []*gcs.ObjectAttrs, done bool) {
	if m.entries == nil {
		m.entries = map[string]entry{}
	}
	var lastObject, lastPrefix string
	for _, a := range batch {
		e := entry{name: a.Prefix}
		if a.Prefix == "" {
			e = entry{name: a.Name, attrs: a}
			lastObject = max(lastObject, a.Name)
		} else {
			lastPrefix = max(lastPrefix, a.Prefix)
		}
		if m.after.after(e) {
			m.entries[e.name] = e
		}
	}
	m.done = done
	if lastObject == "" {
		lastObject = lastPrefix
	}
	m.bound = max(m.bound, lastObject)
}

// certain returns the entries no later backend page can precede, sorted.
func (m *merger) certain() []entry {
	var out []entry
	for _, e := range m.entries {
		if m.done || e.name <= m.bound {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b entry) int { return cmp.Compare(a.name, b.name) })
	return out
}

// known counts the certain entries.
func (m *merger) known() int { return len(m.certain()) }

// page returns the first limit certain entries and the token for the rest.
func (m *merger) page(bucket string, limit int) *storage.ListResult {
	es := m.certain()
	more := !m.done || len(es) > limit
	if len(es) > limit {
		es = es[:limit]
	}
	res := &storage.ListResult{}
	for _, e := range es {
		if e.attrs == nil {
			res.CommonPrefixes = append(res.CommonPrefixes, e.name)
			continue
		}
		info := objectInfo(e.attrs)
		info.Bucket = bucket
		res.Objects = append(res.Objects, *info)
	}
	if more && len(es) > 0 {
		last := es[len(es)-1]
		res.NextPageToken = encodeCursor(cursor{name: last.name, prefix: last.attrs == nil})
	}
	return res
}
