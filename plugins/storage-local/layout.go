package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/url"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/llmproxy/llmproxy/sdk/storage"
)

// On disk, bucket b and key "x/y.txt" live in the directory b/x/y.txt/:
//
//	.meta        JSON sidecar: data file, size, etag, content type, metadata
//	.v-<id>      the data of the current version, named by .meta
//
// Each key segment becomes one directory name with "%" written as "%25"
// and a leading "." as "%2E", so that directory names never start with
// "." and the reserved file names above never clash with a key; keys "a"
// and "a/b" coexist. An upload writes a fresh .v-<id> file and commits by
// renaming a new .meta over the old one, so readers see the old or the
// new object, never a mix, and a failed upload leaves nothing behind.

const (
	metaName      = ".meta"
	versionPrefix = ".v-"
	tmpPrefix     = ".tmp-"
	// maxSegmentBytes is the longest directory name most file systems
	// allow.
	maxSegmentBytes = 255
)

// meta is the JSON sidecar of an object.
type meta struct {
	File         string            `json:"file"`
	Size         int64             `json:"size"`
	ETag         string            `json:"etag"`
	ContentType  string            `json:"content_type,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	LastModified time.Time         `json:"last_modified"`
}

func (m *meta) info(bucket, key string) *storage.ObjectInfo {
	return &storage.ObjectInfo{
		Bucket: bucket, Key: key, Size: m.Size, ETag: m.ETag, ContentType: m.ContentType,
		LastModified: m.LastModified, Metadata: m.Metadata,
	}
}

// escapeSegment maps a key segment to its directory name.
func escapeSegment(s string) string {
	s = strings.ReplaceAll(s, "%", "%25")
	if strings.HasPrefix(s, ".") {
		s = "%2E" + s[1:]
	}
	return s
}

// unescapeSegment maps a directory name back to its key segment.
func unescapeSegment(s string) (string, bool) {
	if strings.HasPrefix(s, ".") {
		return "", false
	}
	u, err := url.PathUnescape(s)
	return u, err == nil
}

// checkBucket applies the SDK's bucket rules plus the local ones.
func checkBucket(bucket string) error {
	if err := storage.ValidateBucket(bucket); err != nil {
		return err
	}
	if strings.HasPrefix(bucket, ".") {
		return storage.InvalidBucket(bucket, "bucket names may not start with a dot here")
	}
	return nil
}

// objectDir returns the directory of bucket/key relative to the root, or
// a 400 error for a key the local backend cannot store safely.
func objectDir(bucket, key string) (string, error) {
	if err := checkBucket(bucket); err != nil {
		return "", err
	}
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	if strings.HasPrefix(key, "/") {
		return "", storage.InvalidKey(key, "absolute keys are not allowed")
	}
	segs := strings.Split(key, "/")
	out := make([]string, 0, len(segs)+1)
	out = append(out, bucket)
	for _, s := range segs {
		switch s {
		case "":
			return "", storage.InvalidKey(key, "empty path segment (leading, trailing or double slash)")
		case ".", "..":
			return "", storage.InvalidKey(key, "\".\" and \"..\" segments are not allowed")
		}
		e := escapeSegment(s)
		if len(e) > maxSegmentBytes {
			return "", storage.InvalidKey(key, fmt.Sprintf("a path segment is longer than %d bytes", maxSegmentBytes))
		}
		out = append(out, e)
	}
	return strings.Join(out, "/"), nil
}

// readMeta reads the sidecar of the object in dir.
func readMeta(root *os.Root, dir string) (*meta, error) {
	b, err := root.ReadFile(path.Join(dir, metaName))
	if err != nil {
		return nil, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("corrupt metadata of %s: %w", dir, err)
	}
	if !strings.HasPrefix(m.File, versionPrefix) || strings.Contains(m.File, "/") {
		return nil, fmt.Errorf("corrupt metadata of %s: data file %q", dir, m.File)
	}
	return &m, nil
}

// isNotFound reports whether err means a path (or one of its parents)
// does not exist as a directory.
func isNotFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// lock returns the mutex that serialises commits to dir.
func (l *Local) lock(dir string) func() {
	h := fnv.New32a()
	h.Write([]byte(dir))
	mu := &l.locks[h.Sum32()%uint32(len(l.locks))]
	mu.Lock()
	return mu.Unlock
}
