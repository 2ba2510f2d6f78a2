package main

import (
	"context"
	"encoding/base64"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// List walks the bucket's directory tree in key order, skipping subtrees
// that cannot hold a key of the page, and stops after MaxKeys entries.
func (l *Local) List(ctx context.Context, req *storage.ListRequest) (*storage.ListResult, error) {
	st, err := l.current()
	if err != nil {
		return nil, err
	}
	if err := checkBucket(req.Bucket); err != nil {
		return nil, err
	}
	if err := bucketExists(st.root, req.Bucket); err != nil {
		return nil, err
	}
	w := &walker{ctx: ctx, root: st.root, bucket: req.Bucket, req: req, res: &storage.ListResult{}}
	w.max = req.MaxKeys
	if w.max <= 0 || w.max > storage.DefaultMaxKeys {
		w.max = storage.DefaultMaxKeys
	}
	if req.PageToken != "" {
		if w.after, w.afterIsPrefix, err = decodeToken(req.PageToken); err != nil {
			return nil, err
		}
	}
	if err := w.walk(req.Bucket, ""); err != nil {
		return nil, err
	}
	if w.more {
		w.res.NextPageToken = encodeToken(w.last, w.lastIsPrefix)
	}
	return w.res, nil
}

// walker is the state of one List call.
type walker struct {
	ctx    context.Context
	root   *os.Root
	bucket string
	req    *storage.ListRequest
	res    *storage.ListResult
	max    int

	// after is the page token's entry: a key, or a common prefix whose
	// keys the previous page already rolled up.
	after         string
	afterIsPrefix bool
	// cp is the last common prefix emitted; its keys are skipped.
	cp string

	last         string
	lastIsPrefix bool
	more         bool
}

// item is one thing in a directory, in key order: an object (the key
// itself) or the subtree of keys below it (the key plus "/").
type item struct {
	sortKey string
	dir     string
	subtree bool
}

// walk visits the directory dir, whose objects' keys start with keyPrefix
// ("" for the bucket itself). It returns early once the page is full.
func (w *walker) walk(dir, keyPrefix string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	entries, err := readDir(w.root, dir)
	if err != nil {
		if isNotFound(err) {
			// Deleted while walking: nothing to list there.
			return nil
		}
		return fsError("list", w.bucket, keyPrefix, err)
	}
	items := make([]item, 0, 2*len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		seg, ok := unescapeSegment(e.Name())
		if !ok {
			continue
		}
		key := seg
		if keyPrefix != "" {
			key = keyPrefix + "/" + seg
		}
		child := path.Join(dir, e.Name())
		items = append(items, item{sortKey: key, dir: child}, item{sortKey: key + "/", dir: child, subtree: true})
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.sortKey, b.sortKey) })
	for _, it := range items {
		if w.more {
			return nil
		}
		if it.subtree {
			if w.skipSubtree(it.sortKey) {
				continue
			}
			if err := w.walk(it.dir, strings.TrimSuffix(it.sortKey, "/")); err != nil {
				return err
			}
			continue
		}
		if w.skipKey(it.sortKey) {
			continue
		}
		m, err := readMeta(w.root, it.dir)
		if isNotFound(err) {
			continue // a directory on the way to deeper keys, not an object
		}
		if err != nil {
			return fsError("list", w.bucket, it.sortKey, err)
		}
		w.emit(it.sortKey, m)
	}
	return nil
}

// skipSubtree reports whether no key starting with q can be on the page.
func (w *walker) skipSubtree(q string) bool {
	p := w.req.Prefix
	switch {
	case !strings.HasPrefix(q, p) && !strings.HasPrefix(p, q):
		return true
	case w.after != "" && q < w.after && !strings.HasPrefix(w.after, q):
		return true // every key below q sorts before the token
	case w.afterIsPrefix && strings.HasPrefix(q, w.after):
		return true // rolled up on an earlier page
	case w.cp != "" && strings.HasPrefix(q, w.cp):
		return true // rolled up on this page
	}
	return false
}

// skipKey reports whether key is outside the page.
func (w *walker) skipKey(key string) bool {
	return !strings.HasPrefix(key, w.req.Prefix) ||
		(w.after != "" && key <= w.after) ||
		(w.afterIsPrefix && strings.HasPrefix(key, w.after)) ||
		(w.cp != "" && strings.HasPrefix(key, w.cp))
}

// emit adds an object, or the common prefix it rolls up into, to the
// page; it marks the page full when it would be the MaxKeys+1st entry.
func (w *walker) emit(key string, m *meta) {
	prefix, isPrefix := "", false
	if d := w.req.Delimiter; d != "" {
		if i := strings.Index(key[len(w.req.Prefix):], d); i >= 0 {
			prefix, isPrefix = key[:len(w.req.Prefix)+i+len(d)], true
		}
	}
	if len(w.res.Objects)+len(w.res.CommonPrefixes) == w.max {
		w.more = true
		return
	}
	if isPrefix {
		w.cp = prefix
		w.res.CommonPrefixes = append(w.res.CommonPrefixes, prefix)
		w.last, w.lastIsPrefix = prefix, true
		return
	}
	w.res.Objects = append(w.res.Objects, *m.info(w.bucket, key))
	w.last, w.lastIsPrefix = key, false
}

// encodeToken makes a page token from the last entry of a page.
func encodeToken(last string, isPrefix bool) string {
	kind := "k"
	if isPrefix {
		kind = "p"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(kind + last))
}

// decodeToken reads a page token back.
func decodeToken(tok string) (string, bool, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 2 || (b[0] != 'k' && b[0] != 'p') {
		return "", false, openai.InvalidRequest("page_token", "malformed page token")
	}
	return string(b[1:]), b[0] == 'p', nil
}

// readDir lists a directory below the root.
func readDir(root *os.Root, dir string) ([]os.DirEntry, error) {
	f, err := root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}
