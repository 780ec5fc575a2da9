package client

import (
	"context"
	"net/http"

	"connectrpc.com/connect"
)

// Header names of the admin API conventions (see common.proto).
const (
	HeaderRequestID   = "Portcullis-Request-Id"
	HeaderConsistency = "Portcullis-Consistency"
	linearizable      = "linearizable"
)

// callInfo travels in the context of one logical call, across its attempts.
type callInfo struct {
	requestID    string // writes only; the same on every attempt
	linearizable bool   // reads only
}

type callInfoKey struct{}

func withCallInfo(ctx context.Context, info callInfo) context.Context {
	return context.WithValue(ctx, callInfoKey{}, info)
}

// headers is a Connect interceptor that puts the token, the request id and
// the consistency header on every outgoing request.
type headers struct {
	token string
}

var _ connect.Interceptor = headers{}

func (h headers) set(ctx context.Context, hdr http.Header) {
	if h.token != "" {
		hdr.Set("Authorization", "Bearer "+h.token)
	}
	info, _ := ctx.Value(callInfoKey{}).(callInfo)
	if info.requestID != "" {
		hdr.Set(HeaderRequestID, info.requestID)
	}
	if info.linearizable {
		hdr.Set(HeaderConsistency, linearizable)
	}
}

func (h headers) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			h.set(ctx, req.Header())
		}
		return next(ctx, req)
	}
}

func (h headers) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		h.set(ctx, conn.RequestHeader())
		return conn
	}
}

func (h headers) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
