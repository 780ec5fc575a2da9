package syncclient

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	reportTimeout = 10 * time.Second
	// maxReason bounds a rejection reason (the control plane keeps 4 KiB).
	maxReason = 1024
)

// apply hands a received snapshot to the Applier and reports the outcome.
func (c *Client) apply(ctx context.Context, t *target, snap []byte) {
	version, err := c.cfg.Applier.Apply(ctx, snap)
	if ctx.Err() != nil {
		return // shutting down: an interrupted apply is no verdict
	}
	if version.IsZero() {
		version = peekVersion(snap)
	}
	serving, mode := c.cfg.Applier.Serving()
	rep := statusReport(c.cfg.Credential.Name, version, err == nil, serving, mode)
	if err != nil {
		rep.Reason = reason(err)
		if c.nack != nil && c.nack.version == version && c.nack.reason == rep.Reason {
			c.log.DebugContext(ctx, "rejected snapshot again", "version", version.Number, "epoch", version.Epoch, "reason", rep.Reason)
		} else {
			c.log.WarnContext(ctx, "rejected snapshot", "version", version.Number, "epoch", version.Epoch,
				"serving_version", serving.Number, "serving_epoch", serving.Epoch, "reason", rep.Reason)
		}
		c.nack = &nack{version: version, reason: rep.Reason}
	} else {
		c.log.InfoContext(ctx, "applied snapshot", "version", version.Number, "epoch", version.Epoch, "mode", mode)
		if c.nack != nil && !version.Less(c.nack.version) {
			c.nack = nil
		}
	}
	c.report(ctx, t, rep)
}

// statusReport is a report about version (applied or not) from a data
// plane serving serving in mode.
func statusReport(name string, version Version, applied bool, serving Version, mode configsyncv1.Mode) *configsyncv1.ReportRequest {
	return &configsyncv1.ReportRequest{
		Name: name, Version: version.Number, Epoch: version.Epoch, Applied: applied,
		ServingVersion: serving.Number, ServingEpoch: serving.Epoch, Mode: mode,
	}
}

// withNack turns rep into the report of the rejection n.
func withNack(rep *configsyncv1.ReportRequest, n *nack) {
	rep.Version, rep.Epoch, rep.Applied, rep.Reason = n.version.Number, n.version.Epoch, false, n.reason
}

// reportStatus tells a node this data plane just connected to, whose first
// message was heartbeat hb, what it serves; the node otherwise learns its
// mode only with the next version. When the node holds a version newer
// than the one served and still did not send it, the node is withholding a
// version this data plane rejected: its record of the rejection (possibly
// from before a restart of this process) is left alone.
func (c *Client) reportStatus(ctx context.Context, t *target, hb *configsyncv1.Heartbeat) {
	serving, mode := c.cfg.Applier.Serving()
	if serving.Less(heartbeatVersion(hb)) {
		return
	}
	rep := statusReport(c.cfg.Credential.Name, serving, true, serving, mode)
	switch {
	case c.nack != nil && serving.Less(c.nack.version):
		// A lagging node: keep it from sending the rejected version once
		// it catches up.
		withNack(rep, c.nack)
	case serving.IsZero():
		return // nothing to say yet
	}
	c.report(ctx, t, rep)
}

// reportQuarantines reports the data plane's status again when its
// quarantined tools changed since the last successful report (the Run
// goroutine calls it after every message from t). It says what
// reportStatus would, and nothing while a node is withholding a rejected
// version, whose record the report would overwrite.
func (c *Client) reportQuarantines(ctx context.Context, t *target, hb *configsyncv1.Heartbeat) {
	if c.cfg.Quarantines == nil {
		return
	}
	if gen, _ := c.cfg.Quarantines(); c.reportedQuarantines && gen == c.quarantineGen {
		return
	}
	serving, mode := c.cfg.Applier.Serving()
	withheld := serving.Less(heartbeatVersion(hb))
	if serving.IsZero() || withheld && (c.nack == nil || !serving.Less(c.nack.version)) {
		return
	}
	rep := statusReport(c.cfg.Credential.Name, serving, true, serving, mode)
	if c.nack != nil && serving.Less(c.nack.version) {
		withNack(rep, c.nack)
	}
	c.report(ctx, t, rep)
}

// report sends rep to t, with the current quarantined tools. A failure is
// logged and otherwise ignored: the stream is what matters, and the next
// report carries the current state.
func (c *Client) report(ctx context.Context, t *target, rep *configsyncv1.ReportRequest) {
	var gen uint64
	if c.cfg.Quarantines != nil {
		gen, rep.Quarantined = c.cfg.Quarantines()
	}
	if c.cfg.Rollout != nil {
		ro := c.cfg.Rollout()
		rep.Rollout, rep.RolloutStage, rep.CanaryBasisPoints = ro.ID, ro.Stage, ro.BasisPoints
	}
	rctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	req := connect.NewRequest(rep)
	c.authorize(req.Header())
	_, err := t.rpc.Report(rctx, req)
	switch {
	case err == nil:
		c.lastReportErr = 0
		c.quarantineGen, c.reportedQuarantines = gen, true
	case ctx.Err() != nil:
	case connect.CodeOf(err) != c.lastReportErr:
		c.lastReportErr = connect.CodeOf(err)
		c.log.WarnContext(ctx, "cannot report to control plane", "url", t.url, "version", rep.GetVersion(), "err", err)
	default:
		c.log.DebugContext(ctx, "cannot report to control plane", "url", t.url, "version", rep.GetVersion(), "err", err)
	}
}

// reason renders err for the control plane: valid UTF-8, at most maxReason
// bytes.
func reason(err error) string {
	s := strings.ToValidUTF8(err.Error(), "\uFFFD")
	if len(s) <= maxReason {
		return s
	}
	s = s[:maxReason]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// peekVersion reads fields 1 (version) and 13 (epoch) of a serialized
// Snapshot without decoding the rest, for reporting a snapshot the Applier
// could not read. It returns the zero Version when the bytes are not a
// well-formed message.
func peekVersion(b []byte) Version {
	var v Version
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return Version{}
		}
		b = b[n:]
		if (num == versionField || num == epochField) && typ == protowire.VarintType {
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return Version{}
			}
			if num == versionField {
				v.Number = x
			} else {
				v.Epoch = x
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return Version{}
		}
		b = b[m:]
	}
	return v
}

// Field numbers of portcullis.snapshot.v1.Snapshot that peekVersion reads.
const (
	versionField protowire.Number = 1
	epochField   protowire.Number = 13
)

// Lease sends a rate-limit demand report to the control plane and returns
// its leases: to the node the last report went to, else to each node in
// turn (any node answers, forwarding to the leader). Safe for concurrent
// use.
func (c *Client) Lease(ctx context.Context, req *configsyncv1.LeaseRequest) (*configsyncv1.LeaseResponse, error) {
	start := int(c.leaseTarget.Load())
	var last error
	for i := range c.targets {
		idx := (start + i) % len(c.targets)
		r := connect.NewRequest(req)
		c.authorize(r.Header())
		resp, err := c.targets[idx].rpc.Lease(ctx, r)
		if err == nil {
			c.leaseTarget.Store(int64(idx))
			return resp.Msg, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last
}
