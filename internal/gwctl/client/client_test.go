package client_test

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		servers []string
		want    []string
		wantErr string
	}{
		{name: "defaults to https", servers: []string{"cp1:7440", " https://cp2:7440/ "}, want: []string{"https://cp1:7440", "https://cp2:7440"}},
		{name: "http kept", servers: []string{"http://127.0.0.1:7440"}, want: []string{"http://127.0.0.1:7440"}},
		{name: "none", wantErr: "no control-plane server"},
		{name: "empty entry", servers: []string{"https://a", ""}, wantErr: "empty server URL"},
		{name: "bad scheme", servers: []string{"ftp://a"}, wantErr: "scheme must be https or http"},
		{name: "credentials in URL", servers: []string{"https://user:pw@a"}, wantErr: "only scheme, host, port and path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := client.Config{Servers: tt.servers}
			err := cfg.Validate()
			if err != nil && strings.Contains(err.Error(), ":pw@") {
				t.Errorf("error %q shows the password", err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(cfg.Servers, ",") != strings.Join(tt.want, ",") {
				t.Errorf("servers = %v, want %v", cfg.Servers, tt.want)
			}
		})
	}
}
