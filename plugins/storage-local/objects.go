package main

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/llmproxy/llmproxy/sdk/storage"
)

// bucketExists answers 404 bucket_not_found for a missing bucket.
func bucketExists(root *os.Root, bucket string) error {
	fi, err := root.Stat(bucket)
	switch {
	case isNotFound(err):
		return storage.BucketNotFound(bucket)
	case err != nil:
		return fsError("stat bucket", bucket, "", err)
	case !fi.IsDir():
		return storage.BucketNotFound(bucket)
	}
	return nil
}

// missing returns the not-found error for bucket/key: bucket_not_found
// when the bucket itself is missing, object_not_found otherwise.
func missing(root *os.Root, bucket, key string) error {
	if err := bucketExists(root, bucket); err != nil {
		return err
	}
	return storage.NotFound(bucket, key)
}

// Put streams body into a new version file of the object and commits it.
func (l *Local) Put(ctx context.Context, obj *storage.Object, body io.Reader) (*storage.ObjectInfo, error) {
	st, err := l.current()
	if err != nil {
		return nil, err
	}
	dir, err := objectDir(obj.Bucket, obj.Key)
	if err != nil {
		return nil, err
	}
	if err := bucketExists(st.root, obj.Bucket); err != nil {
		if !st.createBuckets {
			return nil, err
		}
		if err := st.root.Mkdir(obj.Bucket, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fsError("create bucket", obj.Bucket, "", err)
		}
	}
	f, name, err := createVersion(st.root, dir)
	if err != nil {
		return nil, fsError("create", obj.Bucket, obj.Key, err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			st.root.Remove(name)
		}
	}()
	sum := md5.New()
	n, err := io.CopyBuffer(io.MultiWriter(f, sum), &ctxReader{ctx: ctx, r: body}, make([]byte, storage.PieceSize))
	if err != nil {
		return nil, fmt.Errorf("upload %s/%s: %w", obj.Bucket, obj.Key, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fsError("sync", obj.Bucket, obj.Key, err)
	}
	if err := f.Close(); err != nil {
		return nil, fsError("close", obj.Bucket, obj.Key, err)
	}
	ct := obj.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	m := &meta{
		File: path.Base(name), Size: n, ETag: hex.EncodeToString(sum.Sum(nil)), ContentType: ct,
		Metadata: obj.Metadata, LastModified: time.Now().UTC(),
	}
	if err := l.commit(st.root, dir, m); err != nil {
		return nil, fsError("commit", obj.Bucket, obj.Key, err)
	}
	committed = true
	return m.info(obj.Bucket, obj.Key), nil
}

// createVersion creates dir and a new, empty version file in it. A
// concurrent Delete may remove the empty dir in between; that is retried.
func createVersion(root *os.Root, dir string) (*os.File, string, error) {
	var err error
	for range 3 {
		if err = root.MkdirAll(dir, 0o750); err != nil {
			return nil, "", err
		}
		name := path.Join(dir, versionPrefix+randomID())
		var f *os.File
		f, err = root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err == nil {
			return f, name, nil
		}
		if !isNotFound(err) {
			return nil, "", err
		}
	}
	return nil, "", err
}

// commit makes m the object's current version and removes the version it
// replaces.
func (l *Local) commit(root *os.Root, dir string, m *meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := path.Join(dir, tmpPrefix+randomID())
	if err := root.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	unlock := l.lock(dir)
	defer unlock()
	old, _ := readMeta(root, dir)
	if err := root.Rename(tmp, path.Join(dir, metaName)); err != nil {
		root.Remove(tmp)
		return err
	}
	if old != nil && old.File != m.File {
		if err := root.Remove(path.Join(dir, old.File)); err != nil && !isNotFound(err) {
			storage.Logger().Warn("cannot remove replaced object version", "dir", dir, "error", err)
		}
	}
	return nil
}

// open returns the object's metadata and its open data file. It retries
// when a concurrent overwrite removed the version it had just read about.
func open(root *os.Root, bucket, key, dir string) (*meta, *os.File, error) {
	for range 3 {
		m, err := readMeta(root, dir)
		if isNotFound(err) {
			return nil, nil, missing(root, bucket, key)
		}
		if err != nil {
			return nil, nil, fsError("read metadata", bucket, key, err)
		}
		f, err := root.Open(path.Join(dir, m.File))
		if err == nil {
			return m, f, nil
		}
		if !isNotFound(err) {
			return nil, nil, fsError("open", bucket, key, err)
		}
	}
	return nil, nil, fsError("open", bucket, key, errors.New("the object changed while being opened"))
}

// Get opens the object and returns a reader over it or the range asked
// for.
func (l *Local) Get(_ context.Context, req *storage.GetRequest) (*storage.ObjectInfo, io.ReadCloser, error) {
	st, err := l.current()
	if err != nil {
		return nil, nil, err
	}
	dir, err := objectDir(req.Bucket, req.Key)
	if err != nil {
		return nil, nil, err
	}
	m, f, err := open(st.root, req.Bucket, req.Key, dir)
	if err != nil {
		return nil, nil, err
	}
	info := m.info(req.Bucket, req.Key)
	if req.Range == nil {
		return info, f, nil
	}
	r, err := storage.ResolveRange(*req.Range, m.Size)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if _, err := f.Seek(r.Start, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fsError("seek", req.Bucket, req.Key, err)
	}
	info.ContentRange = &r
	return info, readCloser{Reader: io.LimitReader(f, r.Length()), Closer: f}, nil
}

// Head returns the object's metadata.
func (l *Local) Head(_ context.Context, bucket, key string) (*storage.ObjectInfo, error) {
	st, err := l.current()
	if err != nil {
		return nil, err
	}
	dir, err := objectDir(bucket, key)
	if err != nil {
		return nil, err
	}
	m, err := readMeta(st.root, dir)
	if isNotFound(err) {
		return nil, missing(st.root, bucket, key)
	}
	if err != nil {
		return nil, fsError("read metadata", bucket, key, err)
	}
	return m.info(bucket, key), nil
}

// Delete removes the object and the directories it leaves empty. A
// missing object is not an error; a missing bucket is.
func (l *Local) Delete(_ context.Context, bucket, key string) error {
	st, err := l.current()
	if err != nil {
		return err
	}
	dir, err := objectDir(bucket, key)
	if err != nil {
		return err
	}
	if err := bucketExists(st.root, bucket); err != nil {
		return err
	}
	unlock := l.lock(dir)
	m, err := readMeta(st.root, dir)
	if err == nil {
		err = st.root.Remove(path.Join(dir, metaName))
		if err == nil {
			st.root.Remove(path.Join(dir, m.File))
		}
	}
	unlock()
	if err != nil && !isNotFound(err) {
		return fsError("delete", bucket, key, err)
	}
	// Remove empty directories up to the bucket; Remove fails (and the
	// walk stops) at the first one still in use.
	for d := dir; d != bucket && d != "."; d = path.Dir(d) {
		if st.root.Remove(d) != nil {
			break
		}
	}
	return nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type readCloser struct {
	io.Reader
	io.Closer
}

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
