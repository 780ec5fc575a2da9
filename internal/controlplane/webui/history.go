package webui

import (
	"context"
	"time"
)

// PolicyHistory fills the "History and rollouts" section of the policies
// page and carries out its actions. It is the seam for staged policy
// rollouts: the admin API keeps only each set's current version today, so
// the control plane passes none and the section says so; the rollout work
// implements this over its new PolicyService procedures. Implementations
// call the API only through c with ctx (the signed-in user's), so the
// API's role checks apply, and must be safe for concurrent use.
type PolicyHistory interface {
	// PolicyHistory returns what to show for the named set (nil: nothing).
	PolicyHistory(ctx context.Context, c *Clients, set string) (*HistoryView, error)
	// RolloutAction carries out one of the actions the set's RolloutView
	// offers (by RolloutAction.Name), with the version the form names
	// (empty when the action takes none). The view has checked the
	// session, origin, CSRF token and --web-writes; the API checks the
	// role.
	RolloutAction(ctx context.Context, c *Clients, set, action, version string) error
}

// HistoryView is a policy set's history and rollout.
type HistoryView struct {
	// Versions, newest first.
	Versions []PolicyVersion
	// Rollout is the rollout in progress; nil when none.
	Rollout *RolloutView
}

// PolicyVersion is one version of a policy set.
type PolicyVersion struct {
	Version int64
	Time    time.Time
	// By is the admin token id that applied it.
	By string
	// Active says data planes enforce it.
	Active bool
	// Diff is a unified diff against the version before ("" for the
	// first).
	Diff string
}

// RolloutView is a rollout in progress.
type RolloutView struct {
	// Version is the candidate being rolled out.
	Version int64
	// Stage is "validated", "shadow", "canary" or "complete"; Share the
	// canary share ("10%"), if any.
	Stage, Share string
	// Differences and Errors are the measured decision differences and
	// evaluation errors so far.
	Differences, Errors uint64
	// Actions are what an operator may do now (pause, abort, rollback).
	Actions []RolloutAction
}

// RolloutAction is a button of the rollout section.
type RolloutAction struct {
	// Name is what RolloutAction receives ("pause", "abort", "rollback").
	Name string
	// Label is the button's text.
	Label string
	// Version is the version the action targets, if any.
	Version string
	// Procedure is the API procedure it calls, so the page enables it
	// only for roles the API allows.
	Procedure string
}
