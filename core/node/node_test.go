package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/plugins/store"
	"github.com/skein-p2p/skein/plugins/store/memstore"
	"github.com/skein-p2p/skein/sdk"
)

func init() {
	// The skein binary registers its built-ins in cmd/node; this test binary
	// links the same two.
	pluginhost.Register(store.ID, func() sdk.Plugin { return store.New() })
	pluginhost.Register(memstore.ID, func() sdk.Plugin { return memstore.New() })
}

// loadConfig writes yaml to a file in a new directory and loads it.
func loadConfig(t testing.TB, yaml string) (*config.Config, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "skein.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.WithFile(path), config.WithBuiltins(pluginhost.Registered()))
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	return cfg, path
}

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const linkedYAML = `
node:
  data_dir: data
plugins:
  store:
    mode: linked
  scratch:
    id: store.memory
    mode: linked
`

func TestStartLinked(t *testing.T) {
	cfg, _ := loadConfig(t, linkedYAML)
	ctx := testContext(t)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })

	if fi, err := os.Stat(cfg.Node.DataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
	health := n.Health(ctx)
	var names []string
	for _, h := range health {
		names = append(names, h.Name)
		if !h.Healthy || h.Mode != "linked" || h.PID != 0 || h.State != "running" {
			t.Errorf("health %s = %+v, want healthy, linked, no pid, running", h.Name, h)
		}
	}
	if !slices.Equal(names, []string{"scratch", "store"}) {
		t.Errorf("plugins = %v, want [scratch store] (name order)", names)
	}
	if ids := []string{health[0].ID, health[1].ID}; !slices.Equal(ids, []string{"store.memory", "store.pebble"}) {
		t.Errorf("ids = %v", ids)
	}

	st, err := n.Store("store")
	if err != nil {
		t.Fatalf("Store: %v", err)
	}
	if err := st.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if v, err := st.Get(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	// The store lives where the default config puts it.
	if _, err := os.Stat(filepath.Join(cfg.Node.DataDir, "store")); err != nil {
		t.Errorf("store directory: %v", err)
	}
	if _, err := n.Store("nope"); !errors.Is(err, ErrNoSuchPlugin) {
		t.Errorf("Store(nope) = %v, want ErrNoSuchPlugin", err)
	}
	if err := n.Start(ctx); !errors.Is(err, ErrAlreadyStarted) {
		t.Errorf("second Start = %v, want ErrAlreadyStarted", err)
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := st.Get(ctx, []byte("k")); err == nil {
		t.Error("Get after Stop succeeded")
	}
}

func TestStartReportsPluginConfigProblems(t *testing.T) {
	cfg, path := loadConfig(t, `
node:
  data_dir: data
plugins:
  store:
    mode: linked
    config:
      path: ${node.data_dir}/store
      cache_size: lots
      colour: blue
  scratch:
    id: store.memory
    mode: linked
`)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(testContext(t))
	var inv *config.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("Start = %v, want *config.InvalidError", err)
	}
	var got []string
	for _, p := range inv.Problems {
		got = append(got, p.Source+" | "+p.Key)
	}
	want := []string{path + " | plugins.store.config.cache_size", path + " | plugins.store.config.colour"}
	if !slices.Equal(got, want) {
		t.Errorf("problems = %q, want %q\n%v", got, want, err)
	}
	if h := n.Health(context.Background()); len(h) != 0 {
		t.Errorf("plugins running after a failed start: %+v", h)
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Errorf("Stop after failed Start: %v", err)
	}
}

func TestCheckPluginsChecksum(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "plugin")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := pluginhost.FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0f", 32)
	tests := []struct {
		name    string
		sha     string
		wantErr string
	}{
		{name: "matching checksum", sha: sum},
		{name: "mismatch names key and both sums", sha: wrong, wantErr: "plugins.ext.sha256: binary checksum mismatch: the binary " + bin + " has sha256 " + sum + ", config says " + wrong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := loadConfig(t, "plugins:\n  store:\n    enabled: false\n  ext:\n    id: transport.example\n    path: "+bin+"\n    sha256: "+tc.sha+"\n")
			_, err := CheckPlugins(context.Background(), cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckPlugins: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckPlugins = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestSpec(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "plugin")
	if err := os.WriteFile(bin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("ab", 32)
	cfg, _ := loadConfig(t, `
node:
  log: {level: debug}
plugins:
  store:
    restart: {initial_backoff: 1s, max_backoff: 1m}
  ext:
    id: transport.example
    path: `+bin+`
    sha256: `+sum+`
    args: [--fast]
    pass_env: [HOME]
    env: {GODEBUG: "x=1"}
  linked:
    id: store.memory
    mode: linked
`)
	n, err := New(cfg, WithSelfCommand("/usr/local/bin/skein", strings.Repeat("cd", 32)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		check func(t *testing.T, s pluginhost.Spec)
	}{
		{"store", func(t *testing.T, s pluginhost.Spec) {
			if s.Mode != pluginhost.ModeProcess || s.Command != "/usr/local/bin/skein" || s.SHA256 != strings.Repeat("cd", 32) {
				t.Errorf("built-in in process mode does not re-execute skein: %+v", s)
			}
			if want := []string{"plugin", "serve", "store.pebble", "--log-level", "debug"}; !slices.Equal(s.Args, want) {
				t.Errorf("args = %q, want %q", s.Args, want)
			}
			if s.Restart.Base != time.Second || s.Restart.Max != time.Minute {
				t.Errorf("restart = %+v", s.Restart)
			}
			if s.Config["path"] != filepath.Join(cfg.Node.DataDir, "store") {
				t.Errorf("config = %v", s.Config)
			}
		}},
		{"ext", func(t *testing.T, s pluginhost.Spec) {
			if s.Command != bin || s.SHA256 != sum || !slices.Equal(s.Args, []string{"--fast"}) ||
				!slices.Equal(s.PassEnv, []string{"HOME"}) || s.Env["GODEBUG"] != "x=1" || s.ID != "transport.example" {
				t.Errorf("external spec = %+v", s)
			}
		}},
		{"linked", func(t *testing.T, s pluginhost.Spec) {
			if s.Mode != pluginhost.ModeLinked || s.ID != "store.memory" || s.Command != "" {
				t.Errorf("linked spec = %+v", s)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := n.Spec(tc.name)
			if err != nil {
				t.Fatalf("Spec: %v", err)
			}
			if s.Name != tc.name {
				t.Errorf("name = %q", s.Name)
			}
			tc.check(t, s)
		})
	}
	if _, err := n.Spec("absent"); !errors.Is(err, ErrNoSuchPlugin) {
		t.Errorf("Spec(absent) = %v, want ErrNoSuchPlugin", err)
	}
}

func TestLockDataDir(t *testing.T) {
	cfg, _ := loadConfig(t, linkedYAML)
	dir := cfg.Node.DataDir
	release, err := LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockDataDir(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) || !errors.Is(err, ErrDataDirInUse) || inUse.PID != os.Getpid() || inUse.Dir != dir {
		t.Fatalf("second lock: %v (%+v), want an InUseError with pid %d", err, inUse, os.Getpid())
	}
	// A node started on a held directory starts no plugin.
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("Start on a held directory: %v", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	release, err = LockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	release()
}
