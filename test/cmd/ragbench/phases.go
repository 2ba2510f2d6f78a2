package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"time"
)

// flowStats are the wall times of the RAG flows on one backend.
type flowStats struct {
	backend string
	// first is the warm-up flow, the first request of each kind.
	first time.Duration
	// total, put, presign and chat summarise the measured flows.
	total, put, presign, chat summary
	max                       time.Duration
}

// flowPhase runs one warm-up flow and o.flows measured flows of upload,
// presign and chat with the presigned URL as a document.
func flowPhase(ctx context.Context, c *client, o options) (flowStats, error) {
	var st flowStats
	var total, put, presign, chat []time.Duration
	for i := -1; i < o.flows; i++ {
		name := fmt.Sprintf("doc-%d.md", i+1)
		key := c.prefix + "flow/" + name
		doc := makeDoc(i+1, o.docBytes)
		start := time.Now()
		if err := c.put(ctx, key, "text/markdown", strings.NewReader(doc), int64(len(doc))); err != nil {
			return st, err
		}
		uploaded := time.Now()
		u, err := c.presign(ctx, key)
		if err != nil {
			return st, err
		}
		signed := time.Now()
		if err := c.chatURL(ctx, u, name, len(doc)); err != nil {
			return st, err
		}
		done := time.Now()
		if i < 0 {
			st.first = done.Sub(start)
			continue
		}
		total = append(total, done.Sub(start))
		put = append(put, uploaded.Sub(start))
		presign = append(presign, signed.Sub(uploaded))
		chat = append(chat, done.Sub(signed))
	}
	st.total, st.put, st.presign, st.chat = summarize(total), summarize(put), summarize(presign), summarize(chat)
	st.max = max(st.total.max, st.first)
	return st, nil
}

// cacheStats compare chats whose URL document is fetched (miss) with the
// same chats answered from the document cache (hit).
type cacheStats struct {
	miss, hit summary
}

// cachePhase chats twice about each of o.cacheDocs distinct URL documents
// and checks through the document server's counter that the second chat
// did not fetch.
func cachePhase(ctx context.Context, c *client, docs *docServer, o options) (cacheStats, error) {
	var miss, hit []time.Duration
	run := time.Now().UnixNano()
	for i := range o.cacheDocs {
		name := fmt.Sprintf("cached-%d.md", i)
		path := fmt.Sprintf("/%d/%s", run, name)
		doc := makeDoc(1000+i, o.docBytes)
		u := docs.add(path, doc)
		for round := range 2 {
			start := time.Now()
			if err := c.chatURL(ctx, u, name, len(doc)); err != nil {
				return cacheStats{}, err
			}
			d := time.Since(start)
			if round == 0 {
				miss = append(miss, d)
			} else {
				hit = append(hit, d)
			}
		}
		if n := docs.hitCount(path); n != 1 {
			return cacheStats{}, fmt.Errorf("document %s was fetched %d times by two chats, want once (cache miss then hit)", path, n)
		}
	}
	return cacheStats{miss: summarize(miss), hit: summarize(hit)}, nil
}

// memoryStats are the resident set peaks around one large transfer.
type memoryStats struct {
	size               int64
	putTime, getTime   time.Duration
	hostBefore         memory
	hostAfter          memory
	pluginBefore       memory
	pluginAfter        memory
	hostPID, pluginPID int
}

// memoryPhase streams an o.largeMiB object through put and get, compares
// it by SHA-256, and reads the peak resident sets (VmHWM) of llmproxy and
// of the storage plugin before and after.
func memoryPhase(ctx context.Context, c *client, h *host, o options) (memoryStats, error) {
	st := memoryStats{size: int64(o.largeMiB) << 20, hostPID: h.proc.Cmd.Process.Pid, pluginPID: h.pids[instance]}
	var err error
	if st.hostBefore, err = readMemory(st.hostPID); err != nil {
		return st, err
	}
	if st.pluginBefore, err = readMemory(st.pluginPID); err != nil {
		return st, err
	}
	want := sha256.New()
	if _, err := io.Copy(want, newPatternReader(7, st.size)); err != nil {
		return st, fmt.Errorf("hash the large object: %w", err)
	}
	key := c.prefix + "large/blob.bin"
	start := time.Now()
	if err := c.put(ctx, key, "application/octet-stream", newPatternReader(7, st.size), st.size); err != nil {
		return st, err
	}
	st.putTime = time.Since(start)
	got := sha256.New()
	start = time.Now()
	n, err := c.get(ctx, key, got)
	if err != nil {
		return st, err
	}
	st.getTime = time.Since(start)
	if n != st.size || string(got.Sum(nil)) != string(want.Sum(nil)) {
		return st, fmt.Errorf("get returned %d bytes with sha256 %x, want %d bytes with %x", n, got.Sum(nil), st.size, want.Sum(nil))
	}
	if st.hostAfter, err = readMemory(st.hostPID); err != nil {
		return st, err
	}
	if st.pluginAfter, err = readMemory(st.pluginPID); err != nil {
		return st, err
	}
	return st, nil
}
