package config

import (
	"time"

	"github.com/portcullis-gw/portcullis/internal/credential"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// AgentByAPIKey authenticates an API key ("pck_<id>_<secret>"): the key id
// finds the key, its SHA-256 is compared in constant time, and expired keys
// and disabled agents are refused. ok is false for anything else.
func (c *Compiled) AgentByAPIKey(key string, now time.Time) (*configv1.Agent, bool) {
	id, ok := credential.Parse(credential.APIKey, key)
	if !ok {
		return nil, false
	}
	k, ok := c.keys[id]
	if !ok || !credential.Verify(key, k.key.GetSha256()) {
		return nil, false
	}
	if exp := k.key.GetExpireTime(); exp != nil && !now.Before(exp.AsTime()) {
		return nil, false
	}
	if k.agent.GetDisabled() {
		return nil, false
	}
	return k.agent, true
}
