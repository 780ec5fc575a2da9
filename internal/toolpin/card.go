package toolpin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gowebpki/jcs"

	"github.com/portcullis-gw/portcullis/internal/limits"
)

// AgentCardTool is the tool name of an A2A upstream's one pin: its agent
// card (config.v1.PinKind AGENT_CARD).
const AgentCardTool = "agent-card"

// Limits on what a pinned agent card may hold.
const (
	// MaxSkills bounds the skills of a card.
	MaxSkills = 256
	// MaxSkillID bounds a skill id, in bytes.
	MaxSkillID = 128
)

// HashCard hashes a whole agent card over its canonical JSON (RFC 8785)
// and returns "sha256:<hex>". Unlike a tool definition, every member
// counts: a card is what callers are shown (after the gateway rewrote it)
// and what tells the gateway how to reach the agent, so any change —
// skills, interfaces, capabilities, security, signatures — is a change an
// operator must review. A card nested deeper than limits.JSONNesting is
// refused before it is parsed.
func HashCard(card []byte) (string, error) {
	if _, err := CardSkills(card); err != nil {
		return "", err
	}
	canon, err := jcs.Transform(card)
	if err != nil {
		return "", fmt.Errorf("canonicalize agent card: %w", err)
	}
	sum := sha256.Sum256(canon)
	return Prefix + hex.EncodeToString(sum[:]), nil
}

// CardSkills checks that card is a JSON object with a string "name" and
// at most MaxSkills skills, each an object with a distinct, non-empty
// string "id" of at most MaxSkillID bytes, and returns the skill ids in
// card order.
func CardSkills(card []byte) ([]string, error) {
	var deep *limits.Error
	if errors.As(limits.CheckJSON("agent card", card, len(card)), &deep) {
		return nil, errors.New(deep.Msg)
	}
	var c struct {
		Name   *string `json:"name"`
		Skills []struct {
			ID *string `json:"id"`
		} `json:"skills"`
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(card, &obj); err != nil || obj == nil {
		return nil, errors.New("the agent card must be a JSON object")
	}
	if err := json.Unmarshal(card, &c); err != nil {
		return nil, fmt.Errorf("the agent card does not have the shape of one: %w", err)
	}
	if c.Name == nil {
		return nil, errors.New(`the agent card has no "name"`)
	}
	if len(c.Skills) > MaxSkills {
		return nil, fmt.Errorf("the agent card lists %d skills; at most %d are accepted", len(c.Skills), MaxSkills)
	}
	ids := make([]string, 0, len(c.Skills))
	seen := map[string]bool{}
	for i, s := range c.Skills {
		switch {
		case s.ID == nil || *s.ID == "":
			return nil, fmt.Errorf("skill %d of the agent card has no id", i)
		case len(*s.ID) > MaxSkillID:
			return nil, fmt.Errorf("skill %d of the agent card has an id longer than %d bytes", i, MaxSkillID)
		case seen[*s.ID]:
			return nil, fmt.Errorf("the agent card lists skill %q twice", *s.ID)
		}
		seen[*s.ID] = true
		ids = append(ids, *s.ID)
	}
	return ids, nil
}
