package pipeline

import "context"

// Rollout is a policy rollout as one configuration version stages it: a
// candidate version of one policy set, evaluated beside the active
// versions on every tool call (shadow) or deciding for a deterministic
// share of agents (canary; see package canary). The configuration's
// Authorize decides with the candidate for an agent in the canary and
// says so (Decision.Candidate); the rollout stage asks for the decision
// that was not enforced (Counterpart) and counts the differences.
// Implementations must be safe for concurrent use.
type Rollout interface {
	// ID is the rollout's id.
	ID() string
	// Stage is "shadow" or "canary".
	Stage() string
	// CanaryBasisPoints is the canary's share of agents (0 in shadow).
	CanaryBasisPoints() uint32
	// Counterpart decides the tool call c with the version that does not
	// decide it: the candidate in shadow, the active versions for an
	// agent in the canary. False when there is none (in canary, an agent
	// outside it).
	Counterpart(ctx context.Context, c *Call) (Decision, bool)
}

// RolloutNote is how one call fared in a rollout, for its audit record.
type RolloutNote struct {
	// Candidate: the candidate decided the call.
	Candidate bool
	// Shadow is the decision that was not enforced, when it differs and
	// the call was sampled; nil otherwise.
	Shadow *Decision
	// ShadowIsCandidate: Shadow is the candidate's (in shadow), else the
	// active versions' (for an agent in the canary).
	ShadowIsCandidate bool
}
