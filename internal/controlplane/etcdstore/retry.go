package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// attemptTimeout bounds one etcd request, so that a member that hangs
// costs a retry, not the caller's whole deadline.
const attemptTimeout = 5 * time.Second

// permanent reports errors a retry cannot fix: the request itself is
// refused (too large, no permission, etcd out of space).
func permanent(err error) bool {
	if errors.Is(err, errMissing) {
		return true
	}
	for _, p := range []error{rpctypes.ErrRequestTooLarge, rpctypes.ErrPermissionDenied, rpctypes.ErrNoSpace,
		rpctypes.ErrTooManyOps, rpctypes.ErrUserEmpty, rpctypes.ErrAuthFailed, rpctypes.ErrInvalidAuthToken, rpctypes.ErrAuthNotEnabled} {
		if errors.Is(err, p) || errors.Is(rpctypes.Error(err), p) {
			return true
		}
	}
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument, codes.ResourceExhausted:
		return true
	}
	return false
}

// retry calls fn until it succeeds, fails permanently or ctx ends, each
// attempt bounded by attemptTimeout, backing off between attempts.
func retry(ctx context.Context, log *slog.Logger, what string, fn func(ctx context.Context) error) error {
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if permanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
		if attempt == 3 {
			log.WarnContext(ctx, "etcd: "+what+": retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// describe turns an etcd client error into one that says what to do.
func describe(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(rpctypes.Error(err), rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("etcd refused a request as too large (its --max-request-bytes is below %d bytes?): %w", maxRequest, err)
	case errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace):
		return fmt.Errorf("etcd is out of space (its quota alarm is raised): compact and defragment it, or raise --quota-backend-bytes: %w", err)
	case status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unauthenticated:
		return fmt.Errorf("etcd refused this node (check --etcd-cert-file/--etcd-key-file and the role's permissions on the prefix): %w", err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// compacted reports the error of a read or watch at a revision etcd has
// compacted away.
func compacted(err error) bool {
	return err != nil && (errors.Is(err, rpctypes.ErrCompacted) || errors.Is(rpctypes.Error(err), rpctypes.ErrCompacted))
}
