package adminapi

import (
	"context"

	"connectrpc.com/connect"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	"github.com/portcullis-gw/portcullis/internal/setting"
)

// settingInfo describes the setting spec as st holds it.
func settingInfo(st *state.State, spec setting.Spec) *adminv1.SettingInfo {
	info := &adminv1.SettingInfo{Name: spec.Name, Description: spec.Description, Values: spec.Default, IsDefault: true}
	if r, ok := st.Get(resource.Setting, spec.Name); ok {
		info.Setting = r.GetSetting()
		info.Values, info.IsDefault = r.GetSetting().GetValues(), false
	}
	if info.Values == nil {
		info.Values = []string{}
	}
	return info
}

// lookupSetting finds the spec of name or answers INVALID_ARGUMENT naming
// the settings there are.
func lookupSetting(name string) (setting.Spec, error) {
	spec, ok := setting.Lookup(name)
	if !ok {
		_, err := setting.Canonical(name, nil)
		return setting.Spec{}, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return spec, nil
}

// ListSettings implements SettingService.
func (a *API) ListSettings(ctx context.Context, req *connect.Request[adminv1.ListSettingsRequest]) (*connect.Response[adminv1.ListSettingsResponse], error) {
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListSettingsResponse{}
	for _, spec := range setting.All() {
		out.Settings = append(out.Settings, settingInfo(st, spec))
	}
	return resp(out), nil
}

// GetSetting implements SettingService.
func (a *API) GetSetting(ctx context.Context, req *connect.Request[adminv1.GetSettingRequest]) (*connect.Response[adminv1.GetSettingResponse], error) {
	spec, err := lookupSetting(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	st, err := a.read(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.GetSettingResponse{Setting: settingInfo(st, spec)}), nil
}

// SetSetting implements SettingService: the values are put into canonical
// form here, so that what the state machine checks (and every replica
// stores) is the one canonical list.
func (a *API) SetSetting(ctx context.Context, req *connect.Request[adminv1.SetSettingRequest]) (*connect.Response[adminv1.SetSettingResponse], error) {
	spec, err := lookupSetting(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	values, err := setting.Canonical(spec.Name, req.Msg.GetValues())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	in := &configv1.Setting{Meta: &configv1.ResourceMeta{Name: spec.Name}, Values: values}
	r, err := a.put(ctx, req.Header(), "SettingService.SetSetting", resource.Wrap(in), fsmv1.WriteMode_WRITE_MODE_UPSERT, req.Msg.GetExpectedRevision())
	if err != nil {
		return nil, err
	}
	return resp(&adminv1.SetSettingResponse{Setting: &adminv1.SettingInfo{
		Name: spec.Name, Description: spec.Description, Values: r.GetSetting().GetValues(), Setting: r.GetSetting(),
	}}), nil
}

// ResetSetting implements SettingService. Resetting a setting that holds
// its default already succeeds, so that a retry is harmless.
func (a *API) ResetSetting(ctx context.Context, req *connect.Request[adminv1.ResetSettingRequest]) (*connect.Response[adminv1.ResetSettingResponse], error) {
	spec, err := lookupSetting(req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	err = a.remove(ctx, req.Header(), "SettingService.ResetSetting", resource.Setting, spec.Name, 0)
	if err != nil && connect.CodeOf(err) != connect.CodeNotFound {
		return nil, err
	}
	values := spec.Default
	if values == nil {
		values = []string{}
	}
	return resp(&adminv1.ResetSettingResponse{Setting: &adminv1.SettingInfo{
		Name: spec.Name, Description: spec.Description, Values: values, IsDefault: true,
	}}), nil
}
