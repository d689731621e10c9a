package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// writeFile writes content to dir/name with mode perm and returns the path.
func writeFile(t testing.TB, dir, name, content string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	return path
}

// problemsOf returns the problems of an *InvalidError, failing on any other
// outcome.
func problemsOf(t testing.TB, err error) []Problem {
	t.Helper()
	if err == nil {
		t.Fatal("Load succeeded, want problems")
	}
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("Load error %v (%T), want *InvalidError", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("errors.Is(%v, ErrInvalid) = false", err)
	}
	return inv.Problems
}

func environ(vars ...string) func() []string {
	return func() []string { return vars }
}

func TestDefaults(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfg, err := Load(WithEnviron(environ()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	dataDir := filepath.Join(home, ".skein")
	if cfg.Node.DataDir != dataDir {
		t.Errorf("data_dir = %q, want %q", cfg.Node.DataDir, dataDir)
	}
	if cfg.API.Socket != filepath.Join(dataDir, "skein.sock") {
		t.Errorf("api.socket = %q", cfg.API.Socket)
	}
	if got := cfg.PluginNames(); !slices.Equal(got, []string{"store"}) {
		t.Fatalf("PluginNames = %v, want [store]", got)
	}
	st := cfg.Plugins["store"]
	want := Plugin{
		Enabled: true, ID: "store.pebble", Mode: ModeProcess,
		Args: []string{}, PassEnv: []string{}, Env: map[string]string{},
		StartTimeout: 10 * time.Second, StopTimeout: 5 * time.Second,
		Restart: Restart{InitialBackoff: 250 * time.Millisecond, MaxBackoff: 30 * time.Second},
		Config:  map[string]any{"path": filepath.Join(dataDir, "store")},
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("store plugin =\n%#v\nwant\n%#v", st, want)
	}
	if cfg.Source("node.data_dir") != "defaults" {
		t.Errorf("Source(node.data_dir) = %q, want defaults", cfg.Source("node.data_dir"))
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "skein.yaml", `
node:
  data_dir: /from/file
  log:
    level: debug
`, 0o600)
	tests := []struct {
		name       string
		env        []string
		flags      []string
		wantDir    string
		wantSource string
		wantFormat string
	}{
		{name: "file over defaults", wantDir: "/from/file", wantSource: file, wantFormat: "text"},
		{name: "env over file", env: []string{"SKEIN_NODE__DATA_DIR=/from/env", "SKEIN_NODE__LOG__FORMAT=json"},
			wantDir: "/from/env", wantSource: "env SKEIN_NODE__DATA_DIR", wantFormat: "json"},
		{name: "flag over env", env: []string{"SKEIN_NODE__DATA_DIR=/from/env"}, flags: []string{"--data-dir=/from/flag"},
			wantDir: "/from/flag", wantSource: "flag --data-dir", wantFormat: "text"},
		{name: "flag over file", flags: []string{"--data-dir", "/from/flag", "--log-format", "json"},
			wantDir: "/from/flag", wantSource: "flag --data-dir", wantFormat: "json"},
		{name: "unset flag does not override", env: []string{"SKEIN_NODE__DATA_DIR=/from/env"},
			wantDir: "/from/env", wantSource: "env SKEIN_NODE__DATA_DIR", wantFormat: "text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			fs.String("data-dir", "", "")
			fs.String("log-format", "", "")
			if err := fs.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(WithFile(file), WithEnviron(environ(tc.env...)),
				WithFlags(fs, map[string]string{"data-dir": "node.data_dir", "log-format": "node.log.format"}))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.Node.DataDir != tc.wantDir {
				t.Errorf("data_dir = %q, want %q", cfg.Node.DataDir, tc.wantDir)
			}
			if got := cfg.Source("node.data_dir"); got != tc.wantSource {
				t.Errorf("Source(node.data_dir) = %q, want %q", got, tc.wantSource)
			}
			if cfg.Node.Log.Level != "debug" {
				t.Errorf("log.level = %q, want debug from the file", cfg.Node.Log.Level)
			}
			if cfg.Node.Log.Format != tc.wantFormat {
				t.Errorf("log.format = %q, want %q", cfg.Node.Log.Format, tc.wantFormat)
			}
		})
	}
}

func TestProblems(t *testing.T) {
	dir := t.TempDir()
	exe := writeFile(t, dir, "plugin-bin", "#!/bin/sh\n", 0o755)
	writeFile(t, dir, "not-exec", "x", 0o644)
	goodSum := strings.Repeat("ab", 32)

	type want struct {
		source string // "" means the config file
		key    string
		msg    string // substring of the message
	}
	tests := []struct {
		name  string
		yaml  string
		env   []string
		wants []want
	}{
		{name: "unknown key names key and file", yaml: "node:\n  data_dirr: /x\n",
			wants: []want{{key: "node.data_dirr", msg: `unknown key; did you mean "data_dir"?`}}},
		{name: "unknown top-level section", yaml: "nodes: {}\n",
			wants: []want{{key: "nodes", msg: "unknown key"}}},
		{name: "unknown plugin key", yaml: "plugins:\n  store:\n    sha: abc\n",
			wants: []want{{key: "plugins.store.sha", msg: "unknown key"}}},
		{name: "wrong type string", yaml: "node:\n  log:\n    level: 5\n",
			wants: []want{{key: "node.log.level", msg: "expected a string, got integer 5"}}},
		{name: "wrong type bool", yaml: "plugins:\n  store:\n    enabled: \"yes\"\n",
			wants: []want{{key: "plugins.store.enabled", msg: `expected true or false, got string "yes"`}}},
		{name: "wrong type section", yaml: "node: 7\n",
			wants: []want{{key: "node", msg: "expected a mapping of keys, got integer 7"}}},
		{name: "wrong type list", yaml: "plugins:\n  store:\n    pass_env: HOME\n",
			wants: []want{{key: "plugins.store.pass_env", msg: "expected a list of strings"}}},
		{name: "wrong type duration", yaml: "node:\n  shutdown_timeout: 10\n",
			wants: []want{{key: "node.shutdown_timeout", msg: "expected a duration such as 10s"}}},
		{name: "bad duration", yaml: "node:\n  shutdown_timeout: soon\n",
			wants: []want{{key: "node.shutdown_timeout", msg: `not a duration: "soon"`}}},
		{name: "bad level", yaml: "node:\n  log:\n    level: loud\n",
			wants: []want{{key: "node.log.level", msg: `"loud" is not a level`}}},
		{name: "bad sha256", yaml: "plugins:\n  store:\n    path: plugin-bin\n    sha256: xyz\n",
			wants: []want{{key: "plugins.store.sha256", msg: "not a sha256 hex digest"}}},
		{name: "sha256 upper case", yaml: "plugins:\n  store:\n    path: plugin-bin\n    sha256: " + strings.ToUpper(goodSum) + "\n",
			wants: []want{{key: "plugins.store.sha256", msg: "not a sha256 hex digest"}}},
		{name: "path without sha256", yaml: "plugins:\n  store:\n    path: plugin-bin\n",
			wants: []want{{key: "plugins.store.sha256", msg: "required with path"}}},
		{name: "sha256 without path", yaml: "plugins:\n  store:\n    sha256: " + goodSum + "\n",
			wants: []want{{key: "plugins.store.sha256", msg: "only checked for a binary given by path"}}},
		{name: "missing binary", yaml: "plugins:\n  store:\n    path: ./no-such-plugin\n    sha256: " + goodSum + "\n",
			wants: []want{{key: "plugins.store.path", msg: filepath.Join(dir, "no-such-plugin") + " does not exist"}}},
		{name: "binary not executable", yaml: "plugins:\n  store:\n    path: not-exec\n    sha256: " + goodSum + "\n",
			wants: []want{{key: "plugins.store.path", msg: "is not executable"}}},
		{name: "linked with path", yaml: "plugins:\n  store:\n    mode: linked\n    path: " + exe + "\n",
			wants: []want{{key: "plugins.store.path", msg: "a linked plugin is built in"}}},
		{name: "bad mode", yaml: "plugins:\n  store:\n    mode: thread\n",
			wants: []want{{key: "plugins.store.mode", msg: `"thread" is not a mode`}}},
		{name: "reattach needs reattach", yaml: "plugins:\n  store:\n    mode: reattach\n",
			wants: []want{{key: "plugins.store.reattach", msg: "required with mode: reattach"}}},
		{name: "not a built-in", yaml: "plugins:\n  x:\n    id: transport.nope\n",
			wants: []want{{key: "plugins.x.id", msg: "transport.nope is not built into this binary"}}},
		{name: "bad plugin id", yaml: "plugins:\n  x:\n    id: Store\n    path: plugin-bin\n    sha256: " + goodSum + "\n",
			wants: []want{{key: "plugins.x.id", msg: `"Store" is not a plugin ID`}}},
		{name: "missing plugin id", yaml: "plugins:\n  x:\n    mode: process\n",
			wants: []want{{key: "plugins.x.id", msg: "required"}}},
		{name: "bad plugin name", yaml: "plugins:\n  My-Store:\n    id: store.memory\n",
			wants: []want{{key: "plugins.My-Store", msg: "must match"}}},
		{name: "bad address no port", yaml: "api:\n  tcp: localhost\n  token_file: t\n",
			wants: []want{{key: "api.tcp", msg: "not a host:port address"}}},
		{name: "bad address host", yaml: "api:\n  tcp: example.com:80\n  token_file: t\n",
			wants: []want{{key: "api.tcp", msg: "host must be an IP address or localhost"}}},
		{name: "bad address port", yaml: "api:\n  tcp: 127.0.0.1:99999\n  token_file: t\n",
			wants: []want{{key: "api.tcp", msg: "port must be a number 0-65535"}}},
		{name: "tcp without token", yaml: "api:\n  tcp: 127.0.0.1:7878\n",
			wants: []want{{key: "api.token_file", msg: "required when api.tcp is set"}}},
		{name: "bad metrics address", yaml: "metrics:\n  listen: example.com:9464\n",
			wants: []want{{key: "metrics.listen", msg: "host must be an IP address or localhost"}}},
		{name: "pprof without metrics", yaml: "metrics:\n  pprof: true\n",
			wants: []want{{key: "metrics.listen", msg: "required when metrics.pprof is true"}}},
		{name: "anti-entropy too often", yaml: "replication:\n  anti_entropy_interval: 1ms\n",
			wants: []want{{key: "replication.anti_entropy_interval", msg: "must be at least 100ms"}}},
		{name: "missing retry too often", yaml: "replication:\n  missing_retry: 1ms\n",
			wants: []want{{key: "replication.missing_retry", msg: "want 0 (off) or 100ms to 1m"}}},
		{name: "rendezvous too often", yaml: "replication:\n  rendezvous_interval: 10ms\n",
			wants: []want{{key: "replication.rendezvous_interval", msg: "want 0 (off) or at least 1s"}}},
		{name: "rendezvous negative", yaml: "replication:\n  rendezvous_interval: -1m\n",
			wants: []want{{key: "replication.rendezvous_interval", msg: "want 0 (off) or at least 1s"}}},
		{name: "max groups not a number", yaml: "replication:\n  max_groups: many\n",
			wants: []want{{key: "replication.max_groups", msg: `expected a whole number, got string "many"`}}},
		{name: "max groups fraction", yaml: "replication:\n  max_groups: 1.5\n",
			wants: []want{{key: "replication.max_groups", msg: "expected a whole number"}}},
		{name: "max groups zero", yaml: "replication:\n  max_groups: 0\n",
			wants: []want{{key: "replication.max_groups", msg: "must be at least 1"}}},
		{name: "serve not a bool", yaml: "replication:\n  serve: sometimes\n",
			wants: []want{{key: "replication.serve", msg: "expected true or false"}}},
		{name: "bad env name", yaml: "plugins:\n  store:\n    pass_env: [HOME, \"A=B\"]\n",
			wants: []want{{key: "plugins.store.pass_env[1]", msg: "not an environment variable name"}}},
		{name: "backoff order", yaml: "plugins:\n  store:\n    restart: {initial_backoff: 1m, max_backoff: 1s}\n",
			wants: []want{{key: "plugins.store.restart.max_backoff", msg: "less than restart.initial_backoff"}}},
		{name: "every problem at once",
			yaml: "node:\n  data_dirr: /x\n  log: {level: 5}\napi:\n  tcp: nope\n  token_file: t\nplugins:\n  store:\n    path: missing\n    sha256: 12\n",
			wants: []want{
				{key: "api.tcp", msg: "not a host:port"},
				{key: "node.data_dirr", msg: "unknown key"},
				{key: "node.log.level", msg: "expected a string"},
				{key: "plugins.store.path", msg: "does not exist"},
				{key: "plugins.store.sha256", msg: "expected a string, got integer 12"},
			}},
		{name: "not yaml", yaml: "node: [\n",
			wants: []want{{key: "", msg: "not valid YAML"}}},
		{name: "not a mapping", yaml: "- a\n- b\n",
			wants: []want{{key: "", msg: "the document must be a mapping"}}},
		{name: "env unknown key", env: []string{"SKEIN_NODE__DATADIR=/x"},
			wants: []want{{source: "env SKEIN_NODE__DATADIR", key: "node.datadir", msg: "unknown key"}}},
		{name: "env wrong type", env: []string{"SKEIN_PLUGINS__STORE__ENABLED=maybe"},
			wants: []want{{source: "env SKEIN_PLUGINS__STORE__ENABLED", key: "plugins.store.enabled", msg: "expected true or false"}}},
		{name: "env names the variable", env: []string{"SKEIN_API__TCP=127.0.0.1"},
			wants: []want{
				{source: "env SKEIN_API__TCP", key: "api.tcp", msg: "not a host:port"},
				{source: "env SKEIN_API__TCP", key: "api.token_file", msg: "required when api.tcp is set"},
			}},
		{name: "env bad sha256", env: []string{"SKEIN_PLUGINS__STORE__PATH=" + exe, "SKEIN_PLUGINS__STORE__SHA256=nothex"},
			wants: []want{{source: "env SKEIN_PLUGINS__STORE__SHA256", key: "plugins.store.sha256", msg: "not a sha256 hex digest"}}},
		{name: "env empty level", env: []string{"SKEIN_NODE____X=1"},
			wants: []want{{source: "env SKEIN_NODE____X", msg: "not a config variable"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, dir, "skein.yaml", tc.yaml, 0o600)
			_, err := Load(WithFile(file), WithEnviron(environ(tc.env...)), WithBuiltins([]string{"store.memory", "store.pebble"}))
			got := problemsOf(t, err)
			if len(got) != len(tc.wants) {
				t.Fatalf("got %d problems, want %d:\n%v", len(got), len(tc.wants), err)
			}
			for i, w := range tc.wants {
				src := w.source
				if src == "" {
					src = file
				}
				p := got[i]
				if p.Source != src || p.Key != w.key || !strings.Contains(p.Message, w.msg) {
					t.Errorf("problem %d = %q\nwant source %q key %q message containing %q", i, p.String(), src, w.key, w.msg)
				}
			}
			// The message names source and key as "config SOURCE: KEY: ...".
			if first := got[0]; first.Key != "" && !strings.Contains(err.Error(), "config "+first.Source+": "+first.Key+": ") {
				t.Errorf("error text %q does not name the source and key", err.Error())
			}
		})
	}
}

func TestProblemText(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bin", "", 0o755)
	file := writeFile(t, dir, "skein.yaml", "plugins:\n  store:\n    path: bin\n    sha256: abc\n", 0o600)
	_, err := Load(WithFile(file))
	want := "config " + file + ": plugins.store.sha256: not a sha256 hex digest"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error = %v, want prefix %q", err, want)
	}
}

func TestValues(t *testing.T) {
	dir := t.TempDir()
	exe := writeFile(t, dir, "plugin-bin", "#!/bin/sh\n", 0o755)
	sum := strings.Repeat("0f", 32)
	tests := []struct {
		name  string
		yaml  string
		env   []string
		check func(t *testing.T, cfg *Config)
	}{
		{name: "relative data_dir is relative to the file", yaml: "node: {data_dir: data}\n",
			check: func(t *testing.T, cfg *Config) {
				if want := filepath.Join(dir, "data"); cfg.Node.DataDir != want {
					t.Errorf("data_dir = %q, want %q", cfg.Node.DataDir, want)
				}
				if want := filepath.Join(dir, "data", "store"); cfg.Plugins["store"].Config["path"] != want {
					t.Errorf("store path = %v, want %q", cfg.Plugins["store"].Config["path"], want)
				}
			}},
		{name: "empty key keeps the default", yaml: "node:\n  log:\n    level:\n",
			check: func(t *testing.T, cfg *Config) {
				if cfg.Node.Log.Level != "info" {
					t.Errorf("level = %q, want info", cfg.Node.Log.Level)
				}
			}},
		{name: "external plugin with checksum", yaml: "plugins:\n  ext:\n    id: transport.example\n    path: plugin-bin\n    sha256: " + sum + "\n    args: [-v]\n",
			check: func(t *testing.T, cfg *Config) {
				p := cfg.Plugins["ext"]
				if p.Path != exe || p.SHA256 != sum || !slices.Equal(p.Args, []string{"-v"}) {
					t.Errorf("ext = %+v", p)
				}
				// Keys left out take the defaults of the store entry.
				if !p.Enabled || p.Mode != ModeProcess || p.Restart.InitialBackoff != 250*time.Millisecond || p.StopTimeout != 5*time.Second {
					t.Errorf("ext did not take the plugin defaults: %+v", p)
				}
				if len(p.Config) != 0 {
					t.Errorf("ext config = %v, want empty", p.Config)
				}
			}},
		{name: "another store id drops the default store config", yaml: "plugins:\n  store:\n    id: store.memory\n",
			check: func(t *testing.T, cfg *Config) {
				if p := cfg.Plugins["store"]; p.ID != "store.memory" || len(p.Config) != 0 {
					t.Errorf("store = %+v, want store.memory with no config", p)
				}
			}},
		{name: "disabled plugin is not listed", yaml: "plugins:\n  store:\n    enabled: false\n",
			check: func(t *testing.T, cfg *Config) {
				if names := cfg.PluginNames(); len(names) != 0 {
					t.Errorf("PluginNames = %v, want none", names)
				}
			}},
		{name: "env lists and plugin config values", env: []string{
			"SKEIN_PLUGINS__STORE__PASS_ENV=HOME, USER",
			"SKEIN_PLUGINS__STORE__CONFIG__CACHE_SIZE=1024",
			"SKEIN_PLUGINS__STORE__CONFIG__SYNC_WRITES=true",
			"SKEIN_CONFIG=/ignored.yaml",
			"OTHER__VAR=1",
		},
			check: func(t *testing.T, cfg *Config) {
				p := cfg.Plugins["store"]
				if !slices.Equal(p.PassEnv, []string{"HOME", "USER"}) {
					t.Errorf("pass_env = %q", p.PassEnv)
				}
				if p.Config["cache_size"] != 1024 || p.Config["sync_writes"] != true {
					t.Errorf("config = %#v, want cache_size 1024 (int) and sync_writes true", p.Config)
				}
				if p.Config["path"] == nil {
					t.Errorf("config lost the default path: %#v", p.Config)
				}
				if got := cfg.Source("plugins.store.config.cache_size"); got != "env SKEIN_PLUGINS__STORE__CONFIG__CACHE_SIZE" {
					t.Errorf("Source(cache_size) = %q", got)
				}
			}},
		{name: "reattach mode", yaml: "plugins:\n  store:\n    mode: reattach\n    reattach: '{\"pid\": 1}'\n",
			check: func(t *testing.T, cfg *Config) {
				if p := cfg.Plugins["store"]; p.Mode != ModeReattach || p.Reattach == "" {
					t.Errorf("store = %+v", p)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, dir, "skein.yaml", tc.yaml, 0o600)
			cfg, err := Load(WithFile(file), WithEnviron(environ(tc.env...)))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tc.check(t, cfg)
		})
	}
}

func TestPluginProblems(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "skein.yaml", "plugins:\n  store:\n    config:\n      path: /x\n      cache_size: lots\n", 0o600)
	cfg, err := Load(WithFile(file), WithEnviron(environ("SKEIN_PLUGINS__STORE__CONFIG__SYNC_WRITES=perhaps")))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	diags := []Diagnostic{
		{Key: "cache_size", Message: "must be a size"},
		{Key: "sync_writes", Message: "must be true or false"},
		{Warning: true, Key: "path", Message: "on tmpfs"},
		{Key: "", Message: "whole subtree"},
	}
	problems, warnings := cfg.PluginProblems("store", diags)
	want := []string{
		"config " + file + ": plugins.store.config.cache_size: must be a size",
		"config env SKEIN_PLUGINS__STORE__CONFIG__SYNC_WRITES: plugins.store.config.sync_writes: must be true or false",
		// The whole subtree: its highest-precedence source.
		"config env SKEIN_PLUGINS__STORE__CONFIG__SYNC_WRITES: plugins.store.config: whole subtree",
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(warnings) != 1 || warnings[0].String() != "config "+file+": plugins.store.config.path: on tmpfs" {
		t.Errorf("warnings = %v", warnings)
	}
}

func TestWithFlagsUnknownFlag(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	_, err := Load(WithFlags(fs, map[string]string{"data-dir": "node.data_dir"}))
	if err == nil || !strings.Contains(err.Error(), "no flag --data-dir") {
		t.Fatalf("err = %v, want a complaint about the missing flag", err)
	}
}

func TestMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := Load(WithFile(path))
	if err == nil || !strings.Contains(err.Error(), path) || errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want a read error naming %s", err, path)
	}
}

// TestPartialConfig: a config with problems still comes back, as far as it
// decoded, for checks that report every problem at once.
func TestPartialConfig(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "c.yaml", "node:\n  log: {level: loud}\nplugins:\n  store:\n    config:\n      path: ${node.data_dir}/s\n      cache_size: lots\n", 0o600)
	_, err := Load(WithFile(f))
	var inv *InvalidError
	if !errors.As(err, &inv) || len(inv.Problems) != 1 || inv.Problems[0].Key != "node.log.level" {
		t.Fatalf("Load = %v, want the one problem of node.log.level", err)
	}
	p := inv.Partial
	if p == nil {
		t.Fatal("no partial config")
	}
	st := p.Plugins["store"]
	if st.ID != "store.pebble" || st.Config["cache_size"] != "lots" || st.Config["path"] != filepath.Join(p.Node.DataDir, "s") {
		t.Fatalf("partial store entry = %+v", st)
	}
	// A file that is not YAML has nothing to decode.
	_, err = Load(WithFile(writeFile(t, dir, "bad.yaml", "node: [\n", 0o600)))
	if !errors.As(err, &inv) || inv.Partial != nil {
		t.Fatalf("Load of a non-YAML file = %v, partial %v; want no partial config", err, inv.Partial)
	}
}
