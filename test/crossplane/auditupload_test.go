package crossplane_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/controlplane/cptest"
	"github.com/portcullis-gw/portcullis/internal/dataplane/audit"
	"github.com/portcullis-gw/portcullis/internal/dataplane/auditupload"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1/auditv1connect"
	"github.com/portcullis-gw/portcullis/internal/joincred"
)

func bearer[T any](token string, m *T) *connect.Request[T] {
	r := connect.NewRequest(m)
	r.Header().Set("Authorization", "Bearer "+token)
	return r
}

func joinCredential(t *testing.T, cp *cptest.Node, name string) joincred.Credential {
	t.Helper()
	dps := adminv1connect.NewDataplaneServiceClient(cp.HTTPClient, cp.URL)
	res, err := dps.CreateJoinCredential(context.Background(), bearer(cp.AdminToken, &adminv1.CreateJoinCredentialRequest{Name: name}))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := joincred.Parse(res.Msg.GetCredential())
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func writeRecords(t *testing.T, l *audit.Log, dp string, n int) {
	t.Helper()
	for i := range n {
		r := &auditv1.Record{Time: timestamppb.Now(), Dataplane: dp, Agent: "a", Tool: fmt.Sprintf("t%d", i%7), Outcome: "ok"}
		if err := l.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func await(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func run(t *testing.T, cfg auditupload.Config) (*auditupload.Uploader, func()) {
	t.Helper()
	u, err := auditupload.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	return u, func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}
}

// TestUploadResumesAfterRestart uploads in batches, stops the uploader,
// writes more, starts a fresh uploader on the same log, and finds every
// record at the control plane exactly once, its chain intact.
func TestUploadResumesAfterRestart(t *testing.T) {
	cp := cptest.Start(t, cptest.Options{})
	cred := joinCredential(t, cp, "dp1")
	l, err := audit.Open(audit.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := auditupload.Config{URLs: []string{cp.URL}, Credential: cred, Dev: true, Log: l, MaxRecords: 300, Poll: 10 * time.Millisecond}

	writeRecords(t, l, "dp1", 1000)
	u, stop := run(t, cfg)
	await(t, 20*time.Second, "first upload", func() error {
		if u.Acked() != 1000 || u.Lag() != 0 {
			return fmt.Errorf("acked %d, lag %d", u.Acked(), u.Lag())
		}
		return nil
	})
	stop()

	writeRecords(t, l, "dp1", 700)
	u, stop = run(t, cfg)
	defer stop()
	await(t, 20*time.Second, "upload after restart", func() error {
		if u.Acked() != 1700 {
			return fmt.Errorf("acked %d", u.Acked())
		}
		return nil
	})

	svc := auditv1connect.NewAuditServiceClient(cp.HTTPClient, cp.URL)
	v, err := svc.Verify(context.Background(), bearer(cp.AdminToken, &auditv1.VerifyRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	// The control plane's own chain (its admin writes) is there too.
	var dp1 int64 = -1
	for _, c := range v.Msg.GetChains() {
		if c.GetDataplane() == "dp1" {
			dp1 = int64(c.GetRecords())
		}
	}
	if !v.Msg.GetOk() || dp1 != 1700 {
		t.Fatalf("verify: %v", v.Msg)
	}
	q, err := svc.Query(context.Background(), bearer(cp.AdminToken, &auditv1.QueryRequest{Tool: "t3", Limit: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(q.Msg.GetRecords()); got != 143+100 {
		t.Fatalf("query tool t3: %d records", got)
	}
}

// TestUploadRefusesForeignRecords: a data plane cannot upload records
// that name another data plane, and admin tokens cannot upload at all.
func TestUploadRefusesForeignRecords(t *testing.T) {
	cp := cptest.Start(t, cptest.Options{})
	cred := joinCredential(t, cp, "dp1")
	l, err := audit.Open(audit.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	writeRecords(t, l, "dp2", 3)
	var recs []*auditv1.Record
	for r, err := range l.ReadFrom(1) {
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	svc := auditv1connect.NewAuditServiceClient(&http.Client{Transport: cp.HTTPClient.Transport}, cp.URL)
	_, err = svc.Upload(context.Background(), bearer(cred.Token, &auditv1.UploadRequest{Records: recs}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("foreign records: %v", err)
	}
	_, err = svc.Upload(context.Background(), bearer(cp.AdminToken, &auditv1.UploadRequest{Records: recs}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("admin token: %v", err)
	}
}
