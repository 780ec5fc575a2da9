package adminapi

import (
	"context"
	"errors"
	"strconv"

	"connectrpc.com/connect"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
)

// ListAdminEvents implements AdminLogService, newest first.
func (a *API) ListAdminEvents(ctx context.Context, req *connect.Request[adminv1.ListAdminEventsRequest]) (*connect.Response[adminv1.ListAdminEventsResponse], error) {
	n, err := pageSize(req.Msg.GetPageSize())
	if err != nil {
		return nil, err
	}
	var before uint64
	if tok := req.Msg.GetPageToken(); tok != "" {
		if before, err = strconv.ParseUint(tok, 10, 64); err != nil || before == 0 {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("page_token is not one this API issued"))
		}
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	events, next := st.AdminEvents(before, n)
	out := &adminv1.ListAdminEventsResponse{Events: events}
	if next != 0 {
		out.NextPageToken = strconv.FormatUint(next, 10)
	}
	return resp(out), nil
}
