// Package usage writes the usage records of AI requests to the store off
// the request path.
//
// Record never blocks: records wait in a bounded buffer and a writer
// goroutine inserts them in batches (so at most twice the buffer is held:
// the buffer and the batch being written). When the buffer is full (the
// database is slow or down), new records are dropped, counted in
// llmproxy_usage_records_dropped_total and reported by a warning at most
// every WarnEvery.
package usage

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmproxy/llmproxy/host/internal/store"
)

// Defaults of Options.
const (
	DefaultBuffer     = 10000
	DefaultBatch      = 500
	DefaultFlushEvery = 200 * time.Millisecond
	DefaultWarnEvery  = 10 * time.Second
)

// Options configure a Recorder.
type Options struct {
	// Store receives the records.
	Store store.Store
	// Buffer bounds the records waiting to be written.
	Buffer int
	// Batch is the most records one insert writes; FlushEvery the
	// longest a record waits for a batch to fill.
	Batch      int
	FlushEvery time.Duration
	// WarnEvery spaces the warnings about dropped records and failed
	// writes.
	WarnEvery time.Duration
	// Cost prices a record whose CostUSD is zero, in US dollars; nil
	// leaves it zero. It runs on the writer goroutine, never on the
	// request path.
	Cost func(r *store.UsageRecord) float64
	// Logger receives the warnings; nil logs nothing.
	Logger hclog.Logger
}

// Recorder buffers usage records and writes them in batches.
type Recorder struct {
	opts    Options
	ch      chan store.UsageRecord
	stop    chan struct{}
	done    chan struct{}
	closing sync.Once

	dropped, written, failed atomic.Uint64
	// warned is when the last warning was logged (Unix ns).
	warned atomic.Int64
}

// New starts a Recorder; Close stops it.
func New(opts Options) *Recorder {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	// The batch being filled or written holds records too: it may not
	// hold more than the buffer.
	opts.Batch = min(opts.Batch, opts.Buffer)
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = DefaultFlushEvery
	}
	if opts.WarnEvery <= 0 {
		opts.WarnEvery = DefaultWarnEvery
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	r := &Recorder{opts: opts, ch: make(chan store.UsageRecord, opts.Buffer), stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

// Record queues rec for writing and reports whether it was queued; a
// full buffer drops it.
func (r *Recorder) Record(rec store.UsageRecord) bool {
	select {
	case r.ch <- rec:
		return true
	default:
		r.dropped.Add(1)
		r.warn("usage buffer full: records dropped", "dropped_total", r.dropped.Load())
		return false
	}
}

// Dropped, Written and Failed count the records dropped for a full
// buffer, written, and lost to failed writes.
func (r *Recorder) Dropped() uint64 { return r.dropped.Load() }
func (r *Recorder) Written() uint64 { return r.written.Load() }
func (r *Recorder) Failed() uint64  { return r.failed.Load() }

// warn logs msg unless a warning was logged less than WarnEvery ago.
func (r *Recorder) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := r.warned.Load()
	if now-last < int64(r.opts.WarnEvery) || !r.warned.CompareAndSwap(last, now) {
		return
	}
	r.opts.Logger.Warn(msg, args...)
}

func (r *Recorder) run() {
	defer close(r.done)
	batch := make([]store.UsageRecord, 0, r.opts.Batch)
	tick := time.NewTicker(r.opts.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case rec := <-r.ch:
			batch = r.add(batch, rec)
		case <-tick.C:
			batch = r.flush(batch)
		case <-r.stop:
			for {
				select {
				case rec := <-r.ch:
					batch = r.add(batch, rec)
				default:
					r.flush(batch)
					return
				}
			}
		}
	}
}

// add appends rec to batch and flushes the batch when it is full.
func (r *Recorder) add(batch []store.UsageRecord, rec store.UsageRecord) []store.UsageRecord {
	batch = append(batch, rec)
	if len(batch) >= r.opts.Batch {
		return r.flush(batch)
	}
	return batch
}

// flush writes batch and returns it emptied.
func (r *Recorder) flush(batch []store.UsageRecord) []store.UsageRecord {
	if len(batch) == 0 {
		return batch
	}
	if r.opts.Cost != nil {
		for i := range batch {
			if batch[i].CostUSD == 0 {
				batch[i].CostUSD = r.opts.Cost(&batch[i])
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := r.opts.Store.InsertUsage(ctx, batch)
	cancel()
	if err != nil {
		r.failed.Add(uint64(len(batch)))
		r.warn("writing usage records failed; they are lost", "records", len(batch), "error", err)
	} else {
		r.written.Add(uint64(len(batch)))
	}
	return batch[:0]
}

// Close writes the records still buffered and stops the writer; ctx
// bounds the wait. Records arriving later are dropped.
func (r *Recorder) Close(ctx context.Context) error {
	r.closing.Do(func() { close(r.stop) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Collectors are the recorder's metrics.
func (r *Recorder) Collectors() []prometheus.Collector {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	return []prometheus.Collector{
		counter("llmproxy_usage_records_dropped_total", "Usage records dropped because the write buffer was full.", &r.dropped),
		counter("llmproxy_usage_records_written_total", "Usage records written to the store.", &r.written),
		counter("llmproxy_usage_records_failed_total", "Usage records lost to failed writes.", &r.failed),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "llmproxy_usage_records_queued", Help: "Usage records waiting to be written."},
			func() float64 { return float64(len(r.ch)) }),
	}
}
