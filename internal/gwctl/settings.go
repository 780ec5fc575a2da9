package gwctl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-gw/portcullis/internal/gwctl/client"
)

const defaultServer = "https://127.0.0.1:7440"

// globalFlags are the persistent flags of the root command.
type globalFlags struct {
	servers      []string
	token        string
	tokenFile    string
	caFile       string
	output       string
	timeout      time.Duration
	linearizable bool
}

func (g *globalFlags) register(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringSliceVar(&g.servers, "server", []string{defaultServer}, "control-plane URLs, comma-separated, tried in order (env GWCTL_SERVER)")
	f.StringVar(&g.token, "token", "", "admin token (env GWCTL_TOKEN)")
	f.StringVar(&g.tokenFile, "token-file", "", "file holding the admin token (env GWCTL_TOKEN_FILE)")
	f.StringVar(&g.caFile, "ca-file", "", "PEM CA to trust for https servers: <control-plane data dir>/tls/ca.crt (env GWCTL_CA_FILE)")
	f.StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml; csv for 'audit query' (env GWCTL_OUTPUT)")
	f.Var(newDurationFlag(&g.timeout, 30*time.Second), "timeout", "overall time limit of the command, e.g. 30s, 2m (env GWCTL_TIMEOUT)")
	f.BoolVar(&g.linearizable, "linearizable", false, "read state that includes every acknowledged write (env GWCTL_LINEARIZABLE)")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
}

// settings are the global flags after the environment was applied.
type settings struct {
	servers      []string
	token        string
	caFile       string
	output       string
	timeout      time.Duration
	linearizable bool
}

// settings resolves the global flags: a flag given on the command line wins
// over its GWCTL_* variable, which wins over the default.
func (a *app) settings(cmd *cobra.Command) (*settings, error) {
	g := a.flags
	flags := cmd.Flags()
	env := func(flag, name string) (string, bool) {
		if flags.Changed(flag) {
			return "", false
		}
		v, ok := a.lookupEnv(name)
		return v, ok && v != ""
	}
	s := &settings{servers: g.servers, token: g.token, caFile: g.caFile, output: g.output, timeout: g.timeout, linearizable: g.linearizable}
	if v, ok := env("server", "GWCTL_SERVER"); ok {
		s.servers = strings.Split(v, ",")
	}
	if v, ok := env("ca-file", "GWCTL_CA_FILE"); ok {
		s.caFile = v
	}
	if v, ok := env("output", "GWCTL_OUTPUT"); ok {
		s.output = v
	}
	if v, ok := env("timeout", "GWCTL_TIMEOUT"); ok {
		d, err := parseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("GWCTL_TIMEOUT: %w", err)
		}
		s.timeout = d
	}
	if v, ok := env("linearizable", "GWCTL_LINEARIZABLE"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("GWCTL_LINEARIZABLE: want true or false, got %q", v)
		}
		s.linearizable = b
	}
	token, err := a.resolveToken(flags.Changed("token") || flags.Changed("token-file"))
	if err != nil {
		return nil, err
	}
	s.token = token
	switch s.output {
	case "table", "json", "yaml", "csv":
	default:
		return nil, fmt.Errorf("unknown output format %q: want table, json or yaml (or csv for audit query)", s.output)
	}
	if s.timeout <= 0 {
		return nil, fmt.Errorf("--timeout must be positive")
	}
	return s, nil
}

// resolveToken picks the token: from the flags when either token flag was
// given, else from GWCTL_TOKEN / GWCTL_TOKEN_FILE.
func (a *app) resolveToken(fromFlags bool) (string, error) {
	token, file := a.flags.token, a.flags.tokenFile
	tokenSrc, fileSrc := "--token", "--token-file"
	if !fromFlags {
		token, _ = a.lookupEnv("GWCTL_TOKEN")
		file, _ = a.lookupEnv("GWCTL_TOKEN_FILE")
		tokenSrc, fileSrc = "GWCTL_TOKEN", "GWCTL_TOKEN_FILE" //nolint:gosec // names of variables, not credentials
	}
	if token != "" && file != "" {
		return "", fmt.Errorf("%s and %s are both set; use one", tokenSrc, fileSrc)
	}
	if file == "" {
		return strings.TrimSpace(token), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		// The path is safe to show; the content never is.
		return "", fmt.Errorf("read %s %s: %w", fileSrc, file, unwrapPathError(err))
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("%s %s is empty", fileSrc, file)
	}
	return t, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (s *settings) newClient(warn io.Writer) (*client.Client, error) {
	return client.New(client.Config{
		Servers:      s.servers,
		Token:        s.token,
		CAFile:       s.caFile,
		Linearizable: s.linearizable,
		Warn:         func(line string) { fmt.Fprintln(warn, line) },
	})
}
