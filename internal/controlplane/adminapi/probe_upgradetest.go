//go:build upgradetest

package adminapi

import (
	"context"
	"fmt"

	"net/http"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/edge"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
)

// The probe service of the rolling-upgrade test (test/upgrade), only in
// binaries built with -tags upgradetest: it writes and reads the synthetic
// resource kind upgrade_probe (see package clusterversion), which such a
// binary supports one cluster version above every release. It has no
// generated service: each procedure takes and returns an UpgradeProbe.
const (
	ProbePutProcedure = "/portcullis.upgradetest.v1.ProbeService/PutProbe"
	ProbeGetProcedure = "/portcullis.upgradetest.v1.ProbeService/GetProbe"
)

func init() {
	procedures[ProbePutProcedure] = edge.Rule{Role: operator, MaxBytes: smallRequest}
	procedures[ProbeGetProcedure] = edge.Rule{Role: auditor, MaxBytes: smallRequest}
	testRoutes = func(a *API, own []connect.HandlerOption) []edge.Build {
		unary := func(proc string, h func(context.Context, *connect.Request[fsmv1.UpgradeProbe]) (*connect.Response[fsmv1.UpgradeProbe], error)) edge.Build {
			return func(gateOpts ...connect.HandlerOption) (string, http.Handler) {
				return proc, connect.NewUnaryHandler(proc, h, append(append([]connect.HandlerOption(nil), own...), gateOpts...)...)
			}
		}
		return []edge.Build{unary(ProbePutProcedure, a.putProbe), unary(ProbeGetProcedure, a.getProbe)}
	}
}

// putProbe creates or replaces a probe.
func (a *API) putProbe(ctx context.Context, req *connect.Request[fsmv1.UpgradeProbe]) (*connect.Response[fsmv1.UpgradeProbe], error) {
	p := &fsmv1.UpgradeProbe{Meta: inputMeta(req.Msg.GetMeta()), Note: req.Msg.GetNote()}
	r, err := a.put(ctx, req.Header(), "UpgradeTest.PutProbe", resource.Wrap(p), fsmv1.WriteMode_WRITE_MODE_UPSERT, 0)
	if err != nil {
		return nil, err
	}
	return resp(r.GetUpgradeProbe()), nil
}

// getProbe returns the probe named by meta.name from this node's state.
func (a *API) getProbe(ctx context.Context, req *connect.Request[fsmv1.UpgradeProbe]) (*connect.Response[fsmv1.UpgradeProbe], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	name := req.Msg.GetMeta().GetName()
	r, ok := st.Get(resource.UpgradeProbe, name)
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("upgrade probe %q does not exist", name))
	}
	return resp(r.GetUpgradeProbe()), nil
}
