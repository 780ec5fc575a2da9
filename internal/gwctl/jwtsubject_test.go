package gwctl

import "testing"

func TestParseJWTSubjects(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    int
		wantErr bool
	}{
		{name: "none", in: nil, want: 0},
		{name: "two", in: []string{"corp=bot-1", "ci=repo:acme/x:ref:main"}, want: 2},
		{name: "missing subject", in: []string{"corp="}, wantErr: true},
		{name: "missing source", in: []string{"=bot"}, wantErr: true},
		{name: "no separator", in: []string{"corp"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseJWTSubjects(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && len(got) != tt.want {
				t.Fatalf("got %d bindings, want %d", len(got), tt.want)
			}
			if tt.name == "two" && (got[1].GetIdentitySource() != "ci" || got[1].GetSubject() != "repo:acme/x:ref:main") {
				t.Fatalf("second binding = %v; the subject must keep everything after the first '='", got[1])
			}
		})
	}
}
