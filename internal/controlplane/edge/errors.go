package edge

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/store"
)

// HeaderRequestID names the request id a client repeats on a retry (see
// proto/portcullis/admin/v1/common.proto).
const HeaderRequestID = "Portcullis-Request-Id"

// Messages clients see for failures inside the cluster. They say what
// happened and what to do, and nothing about how the cluster is built.
var (
	errTimedOut     = errors.New("the operation timed out and its outcome is unknown; retry it (a write retried with the same " + HeaderRequestID + " takes effect once)")
	errCanceled     = errors.New("the request was cancelled")
	errNoLeader     = errors.New(store.ErrNoLeader.Error() + "; retry shortly or on another node")
	errShuttingDown = errors.New("this node is shutting down; retry on another node")
	errInternal     = errors.New("this node could not complete the request (a storage or cluster failure; the node's log has the details); retry, or use another node")
)

// Error maps an error from the store, the cluster or this node's disk to a
// Connect error whose message is safe to show a client, and logs the
// detail. Only store.ErrInvalid keeps its own message: it describes the
// caller's input (a backup that cannot be restored) and is written to be
// shown. Every other detail (Raft errors, file paths, peer addresses) stays
// in the log. Domain refusals of the state machine never come here: they
// are results, not errors.
func Error(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	attrs := []any{"err", err}
	if ci, ok := connect.CallInfoForHandlerContext(ctx); ok {
		attrs = append(attrs, "procedure", ci.Spec().Procedure)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		log.WarnContext(ctx, "API call timed out", attrs...)
		return connect.NewError(connect.CodeDeadlineExceeded, errTimedOut)
	case errors.Is(err, context.Canceled):
		log.DebugContext(ctx, "API call cancelled", attrs...)
		return connect.NewError(connect.CodeCanceled, errCanceled)
	case errors.Is(err, store.ErrNoLeader), errors.Is(err, store.ErrNotLeader):
		log.WarnContext(ctx, "API call failed: no leader", attrs...)
		return connect.NewError(connect.CodeUnavailable, errNoLeader)
	case errors.Is(err, store.ErrShutdown):
		log.InfoContext(ctx, "API call failed: node shutting down", attrs...)
		return connect.NewError(connect.CodeUnavailable, errShuttingDown)
	case errors.Is(err, store.ErrInvalid):
		msg := err.Error()
		// Keep the message from the sentinel on: what wraps it names
		// places ("forward to leader n2: ..."), not the problem.
		if i := strings.Index(msg, store.ErrInvalid.Error()); i > 0 {
			msg = msg[i:]
		}
		log.InfoContext(ctx, "API call refused by the store", attrs...)
		return connect.NewError(connect.CodeFailedPrecondition, errors.New(msg))
	default:
		log.ErrorContext(ctx, "API call failed inside the cluster", attrs...)
		return connect.NewError(connect.CodeUnavailable, errInternal)
	}
}

// Internal logs err, a failure of this node's own (sealing, encoding, a
// certificate it holds), and returns an Internal error that names only
// what failed: "this node could not <what>".
func Internal(ctx context.Context, log *slog.Logger, what string, err error) error {
	log.ErrorContext(ctx, "API call failed: "+what, "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("this node could not "+what+"; the node's log has the details"))
}
