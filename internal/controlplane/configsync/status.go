package configsync

import (
	"sync"
	"time"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configsyncv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/configsync/v1"
	"github.com/portcullis-gw/portcullis/internal/limits"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MaxDataplanes bounds how many data-plane statuses a node keeps.
const MaxDataplanes = 10000

// MaxQuarantined bounds the quarantined tools kept per data plane.
const MaxQuarantined = 1000

// Registry holds the statuses of the data planes that talk to this node.
// It is safe for concurrent use.
type Registry struct {
	nodeID string
	now    func() time.Time

	mu   sync.Mutex
	byDP map[string]*entry
}

type entry struct {
	status  *adminv1.DataplaneStatus
	streams int
	// nacked is the version this data plane rejected; it is not sent to
	// it again until the state moves past it.
	nacked held
}

// NewRegistry returns an empty registry for node nodeID.
func NewRegistry(nodeID string, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{nodeID: nodeID, now: now, byDP: map[string]*entry{}}
}

func (r *Registry) get(name string) *entry {
	e, ok := r.byDP[name]
	if !ok {
		if len(r.byDP) >= MaxDataplanes {
			r.evictOldest()
		}
		e = &entry{status: &adminv1.DataplaneStatus{Name: name, NodeId: r.nodeID, Mode: configsyncv1.Mode_MODE_STARTING}}
		r.byDP[name] = e
	}
	e.status.LastSeen = timestamppb.New(r.now())
	return e
}

func (r *Registry) evictOldest() {
	var oldest string
	var at time.Time
	for n, e := range r.byDP {
		if e.streams == 0 && (oldest == "" || e.status.GetLastSeen().AsTime().Before(at)) {
			oldest, at = n, e.status.GetLastSeen().AsTime()
		}
	}
	delete(r.byDP, oldest)
}

// Connected records an open stream and returns a function to call when it
// closes.
func (r *Registry) Connected(name string, version, epoch uint64) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.get(name)
	e.streams++
	e.status.Connected = true
	e.status.ServingVersion = version
	e.status.ServingEpoch = epoch
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		e.streams--
		e.status.Connected = e.streams > 0
		e.status.LastSeen = timestamppb.New(r.now())
	}
}

// Report records a data plane's report, including its current list of
// quarantined tools (which replaces the previous one).
func (r *Registry) Report(req *configsyncv1.ReportRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.get(req.GetName())
	s := e.status
	s.ReportedVersion = req.GetVersion()
	s.ReportedEpoch = req.GetEpoch()
	s.Applied = req.GetApplied()
	s.Reason = req.GetReason()
	s.ServingVersion = req.GetServingVersion()
	s.ServingEpoch = req.GetServingEpoch()
	s.Mode = req.GetMode()
	s.Rollout, s.RolloutStage = cut(req.GetRollout(), limits.Name), cut(req.GetRolloutStage(), limits.Name)
	s.CanaryBasisPoints = min(req.GetCanaryBasisPoints(), 10000)
	// Every report carries the data plane's whole quarantine list.
	q := req.GetQuarantined()
	s.Quarantined = make([]*configsyncv1.QuarantinedTool, 0, min(len(q), MaxQuarantined))
	for _, t := range q[:min(len(q), MaxQuarantined)] {
		s.Quarantined = append(s.Quarantined, proto.Clone(t).(*configsyncv1.QuarantinedTool))
	}
	rep := held{version: req.GetVersion(), epoch: req.GetEpoch()}
	switch {
	case !req.GetApplied():
		e.nacked = rep
	case rep.epoch > e.nacked.epoch || rep.epoch == e.nacked.epoch && rep.version >= e.nacked.version:
		e.nacked = held{}
	}
}

// Nacked is the version name rejected last (zero if none).
func (r *Registry) Nacked(name string) held {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byDP[name]; ok {
		return e.nacked
	}
	return held{}
}

// List returns copies of every status.
func (r *Registry) List() []*adminv1.DataplaneStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*adminv1.DataplaneStatus, 0, len(r.byDP))
	for _, e := range r.byDP {
		out = append(out, proto.Clone(e.status).(*adminv1.DataplaneStatus))
	}
	return out
}

// cut bounds a string a data plane reported.
func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
