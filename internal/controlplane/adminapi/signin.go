package adminapi

import (
	"context"
	"net/netip"

	"github.com/google/uuid"
	"github.com/portcullis-gw/portcullis/internal/controlplane/tokenauth"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// RecordSignIn records in the replicated admin log, and so in the control
// plane's audit chain, that tok signed in to the web view from source (the
// zero address when unknown). It is not a procedure of the API: the web
// view calls it after verifying the token, and a sign-in that could not be
// recorded must not go ahead. The error is safe to show.
func (a *API) RecordSignIn(ctx context.Context, tok tokenauth.Token, source netip.Addr) error {
	cmd := &fsmv1.Command{
		RequestId: "sign-in-" + uuid.NewString(),
		Actor:     &configv1.Actor{TokenId: tok.ID, Role: tok.Role},
		Time:      timestamppb.New(a.cfg.Now()),
		Method:    "WebView.SignIn",
		Op:        &fsmv1.Command_SignIn{SignIn: &fsmv1.SignIn{}},
	}
	if source.IsValid() {
		cmd.GetSignIn().SourceIp = source.Unmap().WithZone("").String()
	}
	_, err := a.apply(ctx, cmd)
	return err
}
