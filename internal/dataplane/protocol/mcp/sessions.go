package mcp

import (
	"container/list"
	"crypto/rand"
	"errors"
	"sync"
	"time"
)

// errSessionsFull reports that the endpoint holds as many sessions as it
// may and none of the calling agent's own can make room.
var errSessionsFull = errors.New("the gateway holds the most MCP sessions it may; end unused sessions (DELETE) or retry later")

// sessionStore holds the MCP sessions minted on initialize, each bound to
// the agent that created it. Sessions live in memory, expire after ttl
// without use, and are bounded twice: per agent (perAgent) and in all
// (max). An agent at its quota that creates one more loses its own least
// recently used session; when the whole store is full, creating a session
// is refused. Eviction never crosses agents: no agent can push another
// agent's sessions (and their resumable streams and pending elicitations)
// out. A data plane restart forgets them all, and clients get the spec's
// 404 and re-initialize. Safe for concurrent use.
type sessionStore struct {
	mu       sync.Mutex
	ttl      time.Duration
	max      int
	perAgent int
	now      func() time.Time
	byID     map[string]*session
	// lru orders every session by last use (front: most recent); with one
	// ttl for all, the expired ones sit at the back.
	lru *list.List // of *session
	// agents orders each agent's sessions by last use.
	agents map[string]*list.List // of *session
	// onEnd, when set, is told of every session that ends (DELETE,
	// expiry, eviction), under the store's lock: it must not call back
	// into the store.
	onEnd func(id string)
}

type session struct {
	id    string
	agent string
	// version is the protocol version initialize negotiated.
	version string
	// logLevel is the mcpwire.LogLevelRank of the level the caller set
	// with logging/setLevel; 0 (none set) passes no log message.
	logLevel int
	expires  time.Time
	all      *list.Element // in lru
	own      *list.Element // in agents[agent]
}

func newSessionStore(ttl time.Duration, maxSessions, perAgent int, now func() time.Time, onEnd func(string)) *sessionStore {
	maxSessions = max(maxSessions, 1)
	return &sessionStore{
		ttl: ttl, max: maxSessions, perAgent: min(max(perAgent, 1), maxSessions), now: now,
		byID: map[string]*session{}, lru: list.New(), agents: map[string]*list.List{}, onEnd: onEnd,
	}
}

// create mints a session for agent, which negotiated protocol version: 128
// random bits as 26 base32 characters. At the agent's quota its own least
// recently used session makes room; when the store is full otherwise, it
// fails with errSessionsFull.
func (s *sessionStore) create(agent, version string) (string, error) {
	id := rand.Text()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expireLocked(now)
	own := s.agents[agent]
	for own != nil && own.Len() >= s.perAgent {
		s.removeLocked(own.Back().Value.(*session))
		own = s.agents[agent]
	}
	if len(s.byID) >= s.max {
		return "", errSessionsFull
	}
	if own == nil {
		own = list.New()
		s.agents[agent] = own
	}
	ses := &session{id: id, agent: agent, version: version, expires: now.Add(s.ttl)}
	ses.all = s.lru.PushFront(ses)
	ses.own = own.PushFront(ses)
	s.byID[id] = ses
	return id, nil
}

// use reports whether id is a live session of agent, and extends it. An
// unknown id, an expired one and one bound to another agent look the same.
func (s *sessionStore) use(id, agent string) bool {
	_, ok := s.useVersion(id, agent)
	return ok
}

// useVersion is use that also returns the protocol version the session
// negotiated.
func (s *sessionStore) useVersion(id, agent string) (string, bool) {
	version, _, ok := s.useInfo(id, agent)
	return version, ok
}

// useInfo is use that also returns the protocol version the session
// negotiated and the log level its caller set (a LogLevelRank).
func (s *sessionStore) useInfo(id, agent string) (version string, logLevel int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ses := s.useLocked(id, agent)
	if ses == nil {
		return "", 0, false
	}
	return ses.version, ses.logLevel, true
}

// setLogLevel records the log level (a LogLevelRank) agent's session id
// asked for; false when there is no such session.
func (s *sessionStore) setLogLevel(id, agent string, rank int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ses := s.useLocked(id, agent)
	if ses == nil {
		return false
	}
	ses.logLevel = rank
	return true
}

// alive reports whether session id still exists, without extending it
// (an expired one is ended now).
func (s *sessionStore) alive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(s.now())
	_, ok := s.byID[id]
	return ok
}

func (s *sessionStore) useLocked(id, agent string) *session {
	now := s.now()
	s.expireLocked(now)
	ses, ok := s.byID[id]
	if !ok || ses.agent != agent {
		return nil
	}
	ses.expires = now.Add(s.ttl)
	s.lru.MoveToFront(ses.all)
	s.agents[agent].MoveToFront(ses.own)
	return ses
}

// end removes agent's session id and reports whether it existed.
func (s *sessionStore) end(id, agent string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ses := s.useLocked(id, agent)
	if ses == nil {
		return false
	}
	s.removeLocked(ses)
	return true
}

// expireLocked drops expired sessions, oldest first.
func (s *sessionStore) expireLocked(now time.Time) {
	for el := s.lru.Back(); el != nil && !now.Before(el.Value.(*session).expires); el = s.lru.Back() {
		s.removeLocked(el.Value.(*session))
	}
}

func (s *sessionStore) removeLocked(ses *session) {
	if s.onEnd != nil {
		s.onEnd(ses.id)
	}
	delete(s.byID, ses.id)
	s.lru.Remove(ses.all)
	own := s.agents[ses.agent]
	own.Remove(ses.own)
	if own.Len() == 0 {
		delete(s.agents, ses.agent)
	}
}
