package alertsend

import (
	"encoding/json"
	"time"

	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// The generic body: Portcullis's own shape.
//
//	{
//	  "id": "a5f2…",                  // the alert's id, also in Portcullis-Alert-Id
//	  "rule": "payments-security",
//	  "record_id": "finance-dp/42",   // gwctl audit get finance-dp/42
//	  "reason": "agent \"billing-bot\" was denied bank__transfer by policy …",
//	  "cluster_id": "…",
//	  "queued_at": "2026-…Z",
//	  "event": {"kind": "policy_deny", "time": "…", "dataplane": "…", "agent": "…",
//	            "user": "…", "target": "bank__transfer", "decision": "deny",
//	            "policies": ["payments/new-payee"], "tags": ["security"],
//	            "outcome_reason": "denied"}
//	}
type genericBody struct {
	ID        string       `json:"id"`
	Rule      string       `json:"rule"`
	RecordID  string       `json:"record_id"`
	Reason    string       `json:"reason"`
	ClusterID string       `json:"cluster_id,omitempty"`
	QueuedAt  string       `json:"queued_at,omitempty"`
	Event     genericEvent `json:"event"`
}

type genericEvent struct {
	Kind          string   `json:"kind"`
	Time          string   `json:"time,omitempty"`
	Dataplane     string   `json:"dataplane,omitempty"`
	Agent         string   `json:"agent,omitempty"`
	User          string   `json:"user,omitempty"`
	Target        string   `json:"target,omitempty"`
	Decision      string   `json:"decision,omitempty"`
	Policies      []string `json:"policies,omitempty"`
	Tags          []string `json:"tags,omitempty"`
	OutcomeReason string   `json:"outcome_reason,omitempty"`
}

// pagerDutyBody is a PagerDuty Events API v2 trigger event.
type pagerDutyBody struct {
	RoutingKey  string           `json:"routing_key"`
	EventAction string           `json:"event_action"`
	DedupKey    string           `json:"dedup_key"`
	Payload     pagerDutyPayload `json:"payload"`
}

type pagerDutyPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp,omitempty"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

// pagerDutySummary bounds the summary (PagerDuty truncates at 1024).
const pagerDutySummary = 1024

func rfc3339(t time.Time) string {
	if t.IsZero() || t.Unix() == 0 {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func eventOf(a *configv1.Alert) genericEvent {
	e := a.GetEvent()
	return genericEvent{
		Kind: e.GetKind(), Dataplane: e.GetDataplane(), Agent: e.GetAgent(), User: e.GetUser(), Target: e.GetTarget(),
		Decision: e.GetDecision(), Policies: e.GetPolicies(), Tags: e.GetTags(), OutcomeReason: e.GetOutcomeReason(),
		Time: rfc3339(e.GetTime().AsTime()),
	}
}

// Body renders an alert in its rule's format. The body is the same on
// every attempt. routingKey is the PagerDuty routing key (unused by the
// generic format).
func Body(a *configv1.Alert, format configv1.AlertFormat, severity, clusterID string, routingKey []byte) ([]byte, error) {
	if format == configv1.AlertFormat_ALERT_FORMAT_PAGERDUTY {
		if severity == "" {
			severity = "critical"
		}
		summary := a.GetReason()
		if len(summary) > pagerDutySummary {
			summary = summary[:pagerDutySummary]
		}
		source := "portcullis"
		if clusterID != "" {
			source += "/" + clusterID
		}
		ev := eventOf(a)
		return json.Marshal(pagerDutyBody{
			RoutingKey: string(routingKey), EventAction: "trigger", DedupKey: a.GetMeta().GetName(),
			Payload: pagerDutyPayload{
				Summary: summary, Source: source, Severity: severity, Timestamp: ev.Time,
				Component: ev.Target, Group: ev.Agent, Class: ev.Kind,
				CustomDetails: map[string]any{
					"alert_id": a.GetMeta().GetName(), "rule": a.GetRule(), "record_id": a.GetRecordId(),
					"event": ev,
				},
			},
		})
	}
	return json.Marshal(genericBody{
		ID: a.GetMeta().GetName(), Rule: a.GetRule(), RecordID: a.GetRecordId(), Reason: a.GetReason(),
		ClusterID: clusterID, QueuedAt: rfc3339(a.GetMeta().GetCreateTime().AsTime()), Event: eventOf(a),
	})
}
