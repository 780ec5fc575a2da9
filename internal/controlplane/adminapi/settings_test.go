package adminapi_test

import (
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	adminv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1"
	"github.com/portcullis-gw/portcullis/internal/gen/portcullis/admin/v1/adminv1connect"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	"github.com/portcullis-gw/portcullis/internal/setting"
)

func TestSettings(t *testing.T) {
	n := startNode(t)
	settings := adminv1connect.NewSettingServiceClient(n.hc, n.base)
	auditor, _ := n.newToken(t, configv1.Role_ROLE_AUDITOR, time.Hour)
	operator, _ := n.newToken(t, configv1.Role_ROLE_OPERATOR, time.Hour)
	const key = setting.MCPAllowedOrigins

	get := func(t *testing.T) *adminv1.SettingInfo {
		t.Helper()
		res, err := settings.GetSetting(ctx(t), req(auditor, &adminv1.GetSettingRequest{Name: key}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetSetting()
	}

	t.Run("default", func(t *testing.T) {
		got := get(t)
		if !got.GetIsDefault() || len(got.GetValues()) != 0 || got.GetDescription() == "" || got.GetSetting() != nil {
			t.Errorf("unset setting: %+v, want the empty default with a description", got)
		}
		all, err := settings.ListSettings(ctx(t), req(auditor, &adminv1.ListSettingsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range all.Msg.GetSettings() {
			names = append(names, s.GetName())
		}
		if !slices.Contains(names, key) {
			t.Errorf("ListSettings = %v, want %s among them", names, key)
		}
	})

	t.Run("roles", func(t *testing.T) {
		_, err := settings.SetSetting(ctx(t), req(operator, &adminv1.SetSettingRequest{Name: key, Values: []string{"https://app.example"}}))
		wantCode(t, err, connect.CodePermissionDenied, "token lacks role admin")
		_, err = settings.ResetSetting(ctx(t), req(auditor, &adminv1.ResetSettingRequest{Name: key}))
		wantCode(t, err, connect.CodePermissionDenied, "token lacks role admin")
	})

	t.Run("set stores the canonical form", func(t *testing.T) {
		res, err := settings.SetSetting(ctx(t), req(n.admin, &adminv1.SetSettingRequest{Name: key, Values: []string{"https://b.example/", "HTTP://Localhost:3000"}}))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"http://localhost:3000", "https://b.example"}
		if got := res.Msg.GetSetting().GetValues(); !slices.Equal(got, want) {
			t.Errorf("stored %q, want %q", got, want)
		}
		if got := get(t); got.GetIsDefault() || !slices.Equal(got.GetValues(), want) || got.GetSetting().GetMeta().GetRevision() == 0 {
			t.Errorf("after set: %+v", got)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		_, err := settings.SetSetting(ctx(t), req(n.admin, &adminv1.SetSettingRequest{Name: key, Values: []string{"https://app.example/path"}}))
		wantCode(t, err, connect.CodeInvalidArgument, "without path")
		_, err = settings.SetSetting(ctx(t), req(n.admin, &adminv1.SetSettingRequest{Name: "mcp.allowed-origin", Values: []string{"https://a.example"}}))
		wantCode(t, err, connect.CodeInvalidArgument, `unknown setting "mcp.allowed-origin"`, key)
		_, err = settings.GetSetting(ctx(t), req(auditor, &adminv1.GetSettingRequest{Name: "nope"}))
		wantCode(t, err, connect.CodeInvalidArgument, "unknown setting")
		_, err = settings.SetSetting(ctx(t), req(n.admin, &adminv1.SetSettingRequest{Name: key, Values: []string{"https://c.example"}, ExpectedRevision: 1}))
		wantCode(t, err, connect.CodeAborted)
	})

	t.Run("reset", func(t *testing.T) {
		for range 2 { // a second reset is harmless
			res, err := settings.ResetSetting(ctx(t), req(n.admin, &adminv1.ResetSettingRequest{Name: key}))
			if err != nil {
				t.Fatal(err)
			}
			if !res.Msg.GetSetting().GetIsDefault() {
				t.Errorf("reset answered %+v", res.Msg.GetSetting())
			}
		}
		if got := get(t); !got.GetIsDefault() || len(got.GetValues()) != 0 {
			t.Errorf("after reset: %+v", got)
		}
	})
}
