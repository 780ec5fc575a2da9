package gwctltest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
)

// State is the fake's replicated state, shared by every node of a Cluster.
// Its methods are safe for concurrent use.
type State struct {
	token    string
	pageSize int

	mu           sync.Mutex
	revision     uint64
	applied      map[string]result // request id → first result
	events       []*configv1.AdminEvent
	agents       map[string]*configv1.Agent
	secrets      map[string]*configv1.Secret
	secretValues map[string][]byte
	policySets   map[string]*configv1.PolicySet
	tokens       map[string]*configv1.AdminToken
	upstreams    map[string]*configv1.Upstream
	pins         map[string]*configv1.ToolPin
	identities   map[string]*configv1.IdentitySource
	valueLists   map[string]*configv1.ValueList
	settings     map[string]*configv1.Setting
	rules        map[string]*configv1.InspectionRule
	backup       []byte
	restored     []byte
	// authzSnapshot is what AccessService answers over; lastCheck the
	// last Check request.
	authzSnapshot *snapshotv1.Snapshot
	lastCheck     *adminv1.CheckRequest
	tokenTTLs     []*adminv1.CreateTokenRequest
}

type result struct {
	resp connect.AnyResponse
	err  error
}

func newState(token string, pageSize int) *State {
	return &State{
		token:        token,
		pageSize:     pageSize,
		applied:      map[string]result{},
		agents:       map[string]*configv1.Agent{},
		secrets:      map[string]*configv1.Secret{},
		secretValues: map[string][]byte{},
		policySets:   map[string]*configv1.PolicySet{},
		tokens:       map[string]*configv1.AdminToken{},
		upstreams:    map[string]*configv1.Upstream{},
		pins:         map[string]*configv1.ToolPin{},
		identities:   map[string]*configv1.IdentitySource{},
		valueLists:   map[string]*configv1.ValueList{},
		settings:     map[string]*configv1.Setting{},
		rules:        map[string]*configv1.InspectionRule{},
	}
}

// once applies a write the first time its request id is seen and returns the
// first result on every repeat. It logs the write as an admin event.
func (s *State) once(id, procedure string, apply func() (connect.AnyResponse, error)) (connect.AnyResponse, error) {
	s.mu.Lock()
	r, seen := s.applied[id]
	s.mu.Unlock()
	if seen {
		return r.resp, r.err
	}
	resp, err := apply()
	if resp != nil {
		// Header and Trailer are made on first use; make them now, so that
		// replays only read them.
		resp.Header()
		resp.Trailer()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied[id] = result{resp, err}
	ev := &configv1.AdminEvent{
		Index:     uint64(len(s.events) + 1),
		Time:      timestamppb.New(Now),
		Actor:     &configv1.Actor{TokenId: "tok1", Role: configv1.Role_ROLE_ADMIN},
		Method:    strings.Replace(strings.TrimPrefix(procedure, "/portcullis.admin.v1."), "/", ".", 1),
		RequestId: id,
	}
	if err != nil {
		ev.ErrorCode = strings.ToUpper(connect.CodeOf(err).String())
		ev.ErrorMessage = err.Error()
	}
	s.events = append(s.events, ev)
	return resp, err
}

// nextMeta stamps output-only fields on a write; s.mu must be held.
func (s *State) nextMeta(m *configv1.ResourceMeta, created *configv1.ResourceMeta) *configv1.ResourceMeta {
	s.revision++
	out := proto.Clone(m).(*configv1.ResourceMeta)
	if out == nil {
		out = &configv1.ResourceMeta{}
	}
	out.Revision = s.revision
	out.UpdateTime = timestamppb.New(Now)
	out.UpdatedBy = "tok1"
	out.CreateTime, out.CreatedBy = timestamppb.New(Now), "tok1"
	if created != nil {
		out.CreateTime, out.CreatedBy = created.GetCreateTime(), created.GetCreatedBy()
	}
	return out
}

// AddAgents registers agents directly (no request), for list tests.
func (s *State) AddAgents(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		s.agents[name] = &configv1.Agent{
			Meta:    s.nextMeta(&configv1.ResourceMeta{Name: name, Owner: "owner-" + name}, nil),
			Team:    "team-" + name,
			ApiKeys: []*configv1.ApiKey{{Id: "k" + name, CreateTime: timestamppb.New(Now)}},
		}
	}
}

// Agents returns the names of the registered agents, sorted.
func (s *State) Agents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedKeys(s.agents)
}

// SecretValue returns what SetSecret stored for name.
func (s *State) SecretValue(name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.secretValues[name]
	return v, ok
}

// PolicySet returns the stored policy set, or nil.
func (s *State) PolicySet(name string) *configv1.PolicySet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policySets[name]
}

// Upstream returns the stored upstream, or nil.
func (s *State) Upstream(name string) *configv1.Upstream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upstreams[name]
}

// SetBackup sets what SaveBackup streams.
func (s *State) SetBackup(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backup = b
}

// Restored returns the data of the last RestoreBackup.
func (s *State) Restored() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restored
}

// TokenRequests returns the CreateToken requests received.
func (s *State) TokenRequests() []*adminv1.CreateTokenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tokenTTLs)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// page cuts a sorted list by page size and token (the index to start at).
func page[V any](s *State, m map[string]V, size int32, token string) ([]V, string, error) {
	keys := sortedKeys(m)
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(keys) {
			return nil, "", connect.NewError(connect.CodeInvalidArgument, errors.New("bad page token"))
		}
		start = n
	}
	limit := s.pageSize
	if size > 0 && int(size) < limit {
		limit = int(size)
	}
	end := min(start+limit, len(keys))
	out := make([]V, 0, end-start)
	for _, k := range keys[start:end] {
		out = append(out, m[k])
	}
	next := ""
	if end < len(keys) {
		next = strconv.Itoa(end)
	}
	return out, next, nil
}

func notFound(kind, name string) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s %q not found", kind, name))
}
