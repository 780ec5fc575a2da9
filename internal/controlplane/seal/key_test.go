package seal_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
)

func TestParseKey(t *testing.T) {
	key := make([]byte, seal.KeySize)
	for i := range key {
		key[i] = byte(i * 7)
	}
	std := base64.StdEncoding.EncodeToString(key)
	raw := base64.RawStdEncoding.EncodeToString(key)
	hx := hex.EncodeToString(key)
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "base64 padded", in: std},
		{name: "base64 unpadded", in: raw},
		{name: "base64 with whitespace", in: "  \n" + std + "\n\t"},
		{name: "hex lower", in: hx},
		{name: "hex upper", in: strings.ToUpper(hx)},
		{name: "hex with newline", in: hx + "\n"},
		{name: "empty", in: "", wantErr: true},
		{name: "whitespace only", in: " \n ", wantErr: true},
		{name: "base64 too short", in: base64.StdEncoding.EncodeToString(key[:16]), wantErr: true},
		{name: "base64 too long", in: base64.StdEncoding.EncodeToString(append(bytes.Clone(key), 1)), wantErr: true},
		{name: "hex too short", in: hx[:62], wantErr: true},
		{name: "hex too long", in: hx + "00", wantErr: true},
		{name: "url-safe base64", in: base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)), wantErr: true},
		{name: "garbage", in: "not a key at all!", wantErr: true},
		{name: "bad padding", in: raw + "==", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := seal.ParseKey([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, seal.ErrInvalidKey) {
					t.Fatalf("ParseKey error = %v, want ErrInvalidKey", err)
				}
				if trimmed := strings.TrimSpace(tt.in); len(trimmed) > 4 && strings.Contains(err.Error(), trimmed) {
					t.Errorf("error %q contains the key text", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if !bytes.Equal(got, key) {
				t.Errorf("ParseKey = %x, want %x", got, key)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	fileKey := bytes.Repeat([]byte{0x11}, seal.KeySize)
	envKey := bytes.Repeat([]byte{0x22}, seal.KeySize)
	fileText := base64.StdEncoding.EncodeToString(fileKey) + "\n"
	envText := hex.EncodeToString(envKey)
	good := writeFile(t, dir, "kek", fileText, 0o600)
	owner := writeFile(t, dir, "kek-400", fileText, 0o400)
	groupRead := writeFile(t, dir, "kek-640", fileText, 0o640)
	worldRead := writeFile(t, dir, "kek-604", fileText, 0o604)
	bad := writeFile(t, dir, "kek-bad", "nope\n", 0o600)

	fileSealer, _ := seal.New(fileKey)
	envSealer, _ := seal.New(envKey)

	tests := []struct {
		name    string
		path    string
		env     string
		wantID  string
		wantErr error
		errText string
	}{
		{name: "file", path: good, wantID: fileSealer.KeyID()},
		{name: "file read-only owner", path: owner, wantID: fileSealer.KeyID()},
		{name: "env only", env: envText, wantID: envSealer.KeyID()},
		{name: "env takes precedence over file", path: good, env: envText, wantID: envSealer.KeyID()},
		{name: "env precedence skips insecure file", path: worldRead, env: envText, wantID: envSealer.KeyID()},
		{name: "group readable", path: groupRead, wantErr: seal.ErrInsecureKeyFile, errText: "chmod 600"},
		{name: "world readable", path: worldRead, wantErr: seal.ErrInsecureKeyFile, errText: "chmod 600"},
		{name: "neither", wantErr: seal.ErrNoKey, errText: "--kek-file"},
		{name: "bad env", env: "xyz", wantErr: seal.ErrInvalidKey, errText: "PORTCULLIS_KEK"},
		{name: "bad file", path: bad, wantErr: seal.ErrInvalidKey},
		{name: "missing file", path: filepath.Join(dir, "absent"), wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := seal.LoadKey(tt.path, tt.env)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("LoadKey error = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not mention %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadKey: %v", err)
			}
			if s.KeyID() != tt.wantID {
				t.Errorf("KeyID = %s, want %s", s.KeyID(), tt.wantID)
			}
		})
	}
}

func TestGenerateKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	if err := seal.GenerateKeyFile(path); err != nil {
		t.Fatalf("GenerateKeyFile: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode = %04o, want 0600", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		t.Errorf("key file has no trailing newline")
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data))); err != nil {
		t.Errorf("key file is not standard base64: %v", err)
	}
	s, err := seal.LoadKey(path, "")
	if err != nil {
		t.Fatalf("LoadKey of generated file: %v", err)
	}

	err = seal.GenerateKeyFile(path)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second GenerateKeyFile error = %v, want fs.ErrExist", err)
	}
	again, err := seal.LoadKey(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if again.KeyID() != s.KeyID() {
		t.Error("existing key file was overwritten")
	}

	other := filepath.Join(dir, "kek2")
	if err := seal.GenerateKeyFile(other); err != nil {
		t.Fatal(err)
	}
	s2, err := seal.LoadKey(other, "")
	if err != nil {
		t.Fatal(err)
	}
	if s2.KeyID() == s.KeyID() {
		t.Error("two generated keys are identical")
	}
}
