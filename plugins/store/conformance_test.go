package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/skein-p2p/skein/plugins/store/internal/storetest"
	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// The sdk conformance suite, against the pebble store linked in, out of
// process through the real handshake (this test binary re-executed), and
// as the built cmd/skein-store binary.

func TestConformanceLinkedIn(t *testing.T) {
	p := New()
	plugintest.StartLinked(t, p, map[string]any{"path": t.TempDir()})
	plugintest.TestStore(t, func(testing.TB) sdk.Store { return p })
}

func TestConformanceOutOfProcess(t *testing.T) {
	rp := plugintest.StartProcess(t, ID, plugintest.WithConfig(map[string]any{"path": t.TempDir()}))
	st, ok := rp.Store()
	if !ok {
		t.Fatal("plugin does not serve a store")
	}
	plugintest.TestStore(t, func(testing.TB) sdk.Store { return st })
}

func TestConformanceBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/skein-store")
	}
	bin := buildStoreBinary(t)
	rp := plugintest.StartBinary(t, bin, plugintest.WithConfig(map[string]any{"path": t.TempDir(), "cache_size": "8MiB"}))
	d, err := rp.Describe(context.Background())
	if err != nil || d.ID != ID {
		t.Fatalf("describe = %+v, %v", d, err)
	}
	st, ok := rp.Store()
	if !ok {
		t.Fatal("plugin does not serve a store")
	}
	if *long {
		plugintest.TestStore(t, func(testing.TB) sdk.Store { return st })
		return
	}
	// The full suite across the wire runs in TestConformanceOutOfProcess;
	// here, that the binary serves a working store.
	ctx := context.Background()
	if err := st.Batch(ctx, []sdk.Op{{Key: []byte("b/2"), Value: []byte("two")}, {Key: []byte("b/1"), Value: []byte("one")}}, true); err != nil {
		t.Fatalf("batch: %v", err)
	}
	if _, err := st.Get(ctx, []byte("b/3")); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("get absent: %v, want sdk.ErrNotFound", err)
	}
	if err := st.Put(ctx, nil, []byte("x")); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Fatalf("put empty key: %v, want sdk.ErrInvalidArgument", err)
	}
	keys, vals := storetest.Collect(t, st.Query(ctx, sdk.Query{Prefix: []byte("b/")}))
	if fmt.Sprint(keys, vals) != "[b/1 b/2] [one two]" {
		t.Fatalf("query = %q %q", keys, vals)
	}
}

// TestConfigureOutOfProcess: bad config comes back as diagnostics naming
// the key across the wire, and the plugin process survives it.
func TestConfigureOutOfProcess(t *testing.T) {
	rp := plugintest.StartProcess(t, ID, plugintest.WithoutStart())
	ctx := context.Background()
	diags, err := rp.Configure(ctx, map[string]any{"path": 7, "cache_size": "lots", "sync_writes": "sometimes"})
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	got := map[string]bool{}
	for _, d := range diags {
		if d.Severity == sdk.SeverityError {
			got[d.Key] = true
		}
	}
	for _, k := range []string{"path", "cache_size", "sync_writes"} {
		if !got[k] {
			t.Errorf("no error diagnostic for %q: %+v", k, diags)
		}
	}
	if err := rp.Start(ctx); err == nil {
		t.Fatal("started with a bad config")
	}
	diags, err = rp.Configure(ctx, map[string]any{"path": t.TempDir(), "cache_size": 16 << 20, "sync_writes": true})
	if err != nil || len(diags) != 0 {
		t.Fatalf("good config after bad: %v %v", diags, err)
	}
	if err := rp.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
}

// TestPluginLifecycle runs the sdk lifecycle suite. Its StartStop case
// configures an empty subtree, which the pebble store rejects (path is
// required), so the plugin under test is given a default path.
func TestPluginLifecycle(t *testing.T) {
	plugintest.TestPlugin(t, func(t testing.TB) sdk.Plugin {
		return withDefaultPath{New(), t.TempDir()}
	})
}

type withDefaultPath struct {
	*Pebble
	path string
}

func (w withDefaultPath) Configure(ctx context.Context, cfg map[string]any) ([]sdk.Diagnostic, error) {
	c := maps.Clone(cfg)
	if c == nil {
		c = map[string]any{}
	}
	if _, ok := c[KeyPath]; !ok {
		c[KeyPath] = w.path
	}
	return w.Pebble.Configure(ctx, c)
}

// buildStoreBinary builds cmd/skein-store into a temporary directory.
func buildStoreBinary(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to build cmd/skein-store: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "skein-store")
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/skein-store")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/skein-store: %v\n%s", err, out)
	}
	return bin
}
