// Package leasereport runs a data plane's report loop for capacity leased
// from the control-plane leader: rate-limit leases (package ratelimit) and
// budget slices (package limit) both report demand on the leader's
// schedule, and soon after a key without a lease sees a call.
package leasereport

import (
	"context"
	"time"

	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
)

// Sender sends a lease request to the control plane and returns its
// answer. Implementations must be safe to call from Loop's goroutine.
type Sender func(ctx context.Context, req *configsyncv1.LeaseRequest) (*configsyncv1.LeaseResponse, error)

// DefaultRefresh is how often Loop reports before the leader says.
const DefaultRefresh = 2 * time.Second

// minRefresh bounds the refresh interval a leader may ask for.
const minRefresh = 50 * time.Millisecond

// coalesce is how long Loop waits after a kick, so that a burst of new
// keys makes one report.
const coalesce = 20 * time.Millisecond

// Loop reports at once, then every refresh interval and soon after a
// value arrives on kick, until ctx ends. A report asks request for the
// request (nil: nothing to report this time), sends it within the
// interval and hands a successful answer to apply with the time the
// request was made; the answer's refresh, when set, becomes the interval.
func Loop(ctx context.Context, kick <-chan struct{}, send Sender, request func() *configsyncv1.LeaseRequest,
	apply func(resp *configsyncv1.LeaseResponse, sent time.Time), now func() time.Time) {
	refresh := DefaultRefresh
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-kick:
			select {
			case <-ctx.Done():
				return
			case <-time.After(coalesce):
			}
		}
		if req := request(); req != nil {
			sent := now()
			rctx, cancel := context.WithTimeout(ctx, refresh)
			resp, err := send(rctx, req)
			cancel()
			if err == nil {
				apply(resp, sent)
				if r := resp.GetRefresh().AsDuration(); r > 0 {
					refresh = max(r, minRefresh)
				}
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(refresh)
	}
}
