package adminapi

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// strictJSONCodec is Connect's JSON codec, except that unknown fields are
// refused rather than dropped: a misspelt field must not silently become a
// default.
type strictJSONCodec struct{}

func (strictJSONCodec) Name() string { return "json" }

func (strictJSONCodec) Marshal(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto message", m)
	}
	return protojson.Marshal(pm)
}

func (strictJSONCodec) Unmarshal(b []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a proto message", m)
	}
	if len(b) == 0 {
		b = []byte("{}")
	}
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(b, pm)
}

// strictInterceptor refuses binary requests that carry unknown fields (the
// JSON codec refuses them while decoding).
type strictInterceptor struct{}

func (strictInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if m, ok := req.Any().(proto.Message); ok && hasUnknown(m.ProtoReflect(), 0) {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("the request has fields this server does not know; upgrade the server or fix the client"))
		}
		return next(ctx, req)
	}
}

func (strictInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (strictInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func hasUnknown(m protoreflect.Message, depth int) bool {
	if depth > 64 {
		return true
	}
	if len(m.GetUnknown()) > 0 {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				found = hasUnknown(l.Get(i).Message(), depth+1)
			}
		case fd.IsMap():
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					found = hasUnknown(mv.Message(), depth+1)
				}
				return !found
			})
		default:
			found = hasUnknown(v.Message(), depth+1)
		}
		return !found
	})
	return found
}
