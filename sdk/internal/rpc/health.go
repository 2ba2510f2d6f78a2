package rpc

import (
	"context"
	"fmt"
	"time"
)

// CheckHealth runs a plugin's health check within three quarters of ctx's
// remaining time. A check that takes longer (a slow upstream) returns an
// error in time, so that the host marks the instance degraded; the host
// counts a missed answer only when the plugin itself does not answer, and
// replaces the process after several. A panic in the check is recovered
// and reported as its error.
func CheckHealth(ctx context.Context, check func(context.Context) error) error {
	dl, ok := ctx.Deadline()
	if !ok {
		return recoverCheck(ctx, check)
	}
	budget := time.Until(dl) * 3 / 4
	cctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- recoverCheck(cctx, check) }()
	select {
	case err := <-done:
		return err
	case <-cctx.Done():
		return fmt.Errorf("the health check did not finish within %v", budget.Round(time.Millisecond))
	}
}

func recoverCheck(ctx context.Context, check func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Recovered("Health", r)
		}
	}()
	return check(ctx)
}
