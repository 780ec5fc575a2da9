package adminapi

import (
	"connectrpc.com/connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/proto"
)

func cloneResource(r *fsmv1.Resource) *fsmv1.Resource { return proto.Clone(r).(*fsmv1.Resource) }

// inputMeta keeps the caller-controlled fields of a ResourceMeta; the store
// sets the rest.
func inputMeta(m *configv1.ResourceMeta) *configv1.ResourceMeta {
	return &configv1.ResourceMeta{
		Name:        m.GetName(),
		Owner:       m.GetOwner(),
		Labels:      m.GetLabels(),
		Description: m.GetDescription(),
	}
}

// publicAgent strips what no API returns: API-key digests.
func publicAgent(a *configv1.Agent) *configv1.Agent {
	out := proto.Clone(a).(*configv1.Agent)
	for _, k := range out.GetApiKeys() {
		k.Sha256 = nil
	}
	return out
}

// publicToken strips the token digest.
func publicToken(t *configv1.AdminToken) *configv1.AdminToken {
	out := proto.Clone(t).(*configv1.AdminToken)
	out.Sha256 = nil
	return out
}

func resp[T any](m *T) *connect.Response[T] { return connect.NewResponse(m) }
