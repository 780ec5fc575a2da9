package webui

import (
	"net/http"
	"strings"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
)

// maxReasonBytes is the longest freeze reason the API takes.
const maxReasonBytes = 1024

// freeze turns the emergency brake on or off (DataplaneService.SetFreeze,
// as "gwctl freeze on|off").
func (h *Handler) freeze(req *request) (string, error) {
	f := req.r.PostForm
	var on bool
	switch f.Get("frozen") {
	case "on":
		on = true
	case "off":
	default:
		h.fail(req.w, req.r, &req.user, http.StatusBadRequest, "Say whether to turn the brake on or off.")
		return "", nil
	}
	reason := strings.TrimSpace(f.Get("reason"))
	if len(reason) > maxReasonBytes {
		h.fail(req.w, req.r, &req.user, http.StatusBadRequest, "The reason is limited to 1024 bytes.")
		return "", nil
	}
	if _, err := h.api.Dataplane.SetFreeze(req.ctx, withRequestID(req.r, &adminv1.SetFreezeRequest{Frozen: on, Reason: reason})); err != nil {
		return "", err
	}
	h.log.InfoContext(req.r.Context(), "web view: emergency brake changed", "frozen", on, "token_id", req.user.tok.ID)
	if on {
		return "/ui/cluster?done=frozen", nil
	}
	return "/ui/cluster?done=unfrozen", nil
}

// setAgentDisabled disables or enables an agent
// (AgentService.SetAgentDisabled, as "gwctl agent disable|enable").
func (h *Handler) setAgentDisabled(req *request) (string, error) {
	f := req.r.PostForm
	name := f.Get("agent")
	var disabled bool
	switch f.Get("disabled") {
	case "true":
		disabled = true
	case "false":
	default:
		h.fail(req.w, req.r, &req.user, http.StatusBadRequest, "Say whether to disable or enable the agent.")
		return "", nil
	}
	if _, err := h.api.Agent.SetAgentDisabled(req.ctx, withRequestID(req.r, &adminv1.SetAgentDisabledRequest{Name: name, Disabled: disabled})); err != nil {
		return "", err
	}
	if disabled {
		return "/ui/agents?done=agent-disabled", nil
	}
	return "/ui/agents?done=agent-enabled", nil
}

// rolloutAction hands a rollout button to the PolicyHistory hook.
func (h *Handler) rolloutAction(req *request) (string, error) {
	if h.cfg.History == nil {
		h.fail(req.w, req.r, &req.user, http.StatusNotFound, "This control plane has no staged rollouts yet.")
		return "", nil
	}
	f := req.r.PostForm
	if err := h.cfg.History.RolloutAction(req.ctx, h.api, f.Get("set"), f.Get("action"), f.Get("version")); err != nil {
		return "", err
	}
	return "/ui/policies?done=rollout", nil
}
