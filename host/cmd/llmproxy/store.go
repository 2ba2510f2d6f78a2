package main

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/host/internal/admin"
	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/metrics"
	"github.com/llmproxy/llmproxy/host/internal/store"
	records "github.com/llmproxy/llmproxy/host/internal/usage"
)

// storeSweepEvery spaces the deletions of expired stored responses.
const storeSweepEvery = 10 * time.Minute

// stored is what the server needs of the store block: the lookup of
// stored keys, the admin API and the usage recorder (nil when the config
// has no store).
type stored struct {
	st     store.Store
	keys   *auth.Stored
	admin  *admin.API
	usage  *records.Recorder
	cancel context.CancelFunc
}

// openStore opens the database of the store block and starts its usage
// writer and response sweeper. Without a store block only the admin API
// is set, answering that no store is configured. The store block is read
// at start only; a reload keeps the store it started with.
func openStore(cfg *config.File, mx *metrics.Metrics, logger hclog.Logger) (*stored, error) {
	s := &stored{cancel: func() {}}
	if cfg.Store == nil {
		s.admin = admin.New(admin.Options{Logger: logger.Named("admin")})
		return s, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, cfg.Store.Driver, cfg.Store.Source())
	if err != nil {
		return nil, err
	}
	s.st = st
	s.keys = auth.NewStored(st)
	s.admin = admin.New(admin.Options{Store: st, Logger: logger.Named("admin")})
	s.usage = records.New(records.Options{Store: st, Buffer: cfg.Store.UsageBuffer, Logger: logger.Named("usage")})
	mx.Register(s.usage.Collectors()...)
	var sweep context.Context
	sweep, s.cancel = context.WithCancel(context.Background())
	go sweepResponses(sweep, st, logger.Named("store"))
	logger.Info("store opened", "driver", cfg.Store.Driver)
	return s, nil
}

// sweepResponses deletes expired stored responses until ctx ends.
func sweepResponses(ctx context.Context, st store.Store, logger hclog.Logger) {
	t := time.NewTicker(storeSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n, err := st.SweepResponses(ctx, now); err != nil {
				logger.Warn("deleting expired stored responses failed", "error", err)
			} else if n > 0 {
				logger.Debug("deleted expired stored responses", "count", n)
			}
		}
	}
}

// Close writes the buffered usage records and closes the database.
func (s *stored) Close() {
	s.cancel()
	if s.usage != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.usage.Close(ctx)
		cancel()
	}
	if s.st != nil {
		s.st.Close()
	}
}
