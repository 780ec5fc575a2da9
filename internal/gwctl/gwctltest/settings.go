package gwctltest

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/setting"
)

// settings keeps cluster-wide settings in canonical form with the real
// table of keys (package setting), like the control plane; it knows no
// roles or version gates.
type settings struct {
	adminv1connect.UnimplementedSettingServiceHandler
	state *State
}

func (h *settings) info(spec setting.Spec) *adminv1.SettingInfo {
	out := &adminv1.SettingInfo{Name: spec.Name, Description: spec.Description, Values: spec.Default, IsDefault: true}
	if st, ok := h.state.settings[spec.Name]; ok {
		out.Values, out.IsDefault, out.Setting = st.GetValues(), false, st
	}
	return out
}

func lookup(name string) (setting.Spec, error) {
	spec, ok := setting.Lookup(name)
	if !ok {
		_, err := setting.Canonical(name, nil)
		return spec, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return spec, nil
}

func (h *settings) ListSettings(context.Context, *connect.Request[adminv1.ListSettingsRequest]) (*connect.Response[adminv1.ListSettingsResponse], error) {
	h.state.mu.Lock()
	defer h.state.mu.Unlock()
	out := &adminv1.ListSettingsResponse{}
	for _, spec := range setting.All() {
		out.Settings = append(out.Settings, h.info(spec))
	}
	return connect.NewResponse(out), nil
}

func (h *settings) GetSetting(_ context.Context, req *connect.Request[adminv1.GetSettingRequest]) (*connect.Response[adminv1.GetSettingResponse], error) {
	spec, err := lookup(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	h.state.mu.Lock()
	defer h.state.mu.Unlock()
	return connect.NewResponse(&adminv1.GetSettingResponse{Setting: h.info(spec)}), nil
}

func (h *settings) SetSetting(_ context.Context, req *connect.Request[adminv1.SetSettingRequest]) (*connect.Response[adminv1.SetSettingResponse], error) {
	spec, err := lookup(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	values, err := setting.Canonical(spec.Name, req.Msg.GetValues())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	s := h.state
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.settings[spec.Name]
	if rev := req.Msg.GetExpectedRevision(); rev != 0 && rev != old.GetMeta().GetRevision() {
		return nil, connect.NewError(connect.CodeAborted, errors.New("revision mismatch"))
	}
	st := &configv1.Setting{Meta: s.nextMeta(&configv1.ResourceMeta{Name: spec.Name}, old.GetMeta()), Values: values}
	s.settings[spec.Name] = st
	return connect.NewResponse(&adminv1.SetSettingResponse{Setting: h.info(spec)}), nil
}

func (h *settings) ResetSetting(_ context.Context, req *connect.Request[adminv1.ResetSettingRequest]) (*connect.Response[adminv1.ResetSettingResponse], error) {
	spec, err := lookup(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	h.state.mu.Lock()
	defer h.state.mu.Unlock()
	delete(h.state.settings, spec.Name)
	return connect.NewResponse(&adminv1.ResetSettingResponse{Setting: h.info(spec)}), nil
}

// Setting returns the stored setting name (nil when it has its default).
func (s *State) Setting(name string) *configv1.Setting {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings[name]
}
