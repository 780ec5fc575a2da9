package mcpgw

import (
	"container/list"
	"crypto/rand"
	"sync"
	"time"
)

// sessionStore holds the MCP sessions minted on initialize, each bound to
// the agent that created it. Sessions live in memory, expire after ttl
// without use, and are bounded: when full, creating one evicts the least
// recently used. A data plane restart forgets them all, and clients get the
// spec's 404 and re-initialize. Safe for concurrent use.
type sessionStore struct {
	mu   sync.Mutex
	ttl  time.Duration
	max  int
	now  func() time.Time
	byID map[string]*list.Element // of *session
	lru  *list.List               // front: most recently used
}

type session struct {
	id      string
	agent   string
	expires time.Time
}

func newSessionStore(ttl time.Duration, maxSessions int, now func() time.Time) *sessionStore {
	return &sessionStore{ttl: ttl, max: max(maxSessions, 1), now: now, byID: map[string]*list.Element{}, lru: list.New()}
}

// create mints a session for agent: 128 random bits as 26 base32
// characters.
func (s *sessionStore) create(agent string) string {
	id := rand.Text()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expireLocked(now)
	for s.lru.Len() >= s.max {
		s.removeLocked(s.lru.Back())
	}
	s.byID[id] = s.lru.PushFront(&session{id: id, agent: agent, expires: now.Add(s.ttl)})
	return id
}

// use reports whether id is a live session of agent, and extends it. An
// unknown id, an expired one and one bound to another agent look the same.
func (s *sessionStore) use(id, agent string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.useLocked(id, agent)
}

func (s *sessionStore) useLocked(id, agent string) bool {
	now := s.now()
	s.expireLocked(now)
	el, ok := s.byID[id]
	if !ok || el.Value.(*session).agent != agent {
		return false
	}
	el.Value.(*session).expires = now.Add(s.ttl)
	s.lru.MoveToFront(el)
	return true
}

// end removes agent's session id and reports whether it existed.
func (s *sessionStore) end(id, agent string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.useLocked(id, agent) {
		return false
	}
	s.removeLocked(s.byID[id])
	return true
}

// expireLocked drops expired sessions. With one ttl for all, the least
// recently used expire first, so they sit at the back.
func (s *sessionStore) expireLocked(now time.Time) {
	for el := s.lru.Back(); el != nil && !now.Before(el.Value.(*session).expires); el = s.lru.Back() {
		s.removeLocked(el)
	}
}

func (s *sessionStore) removeLocked(el *list.Element) {
	delete(s.byID, el.Value.(*session).id)
	s.lru.Remove(el)
}
