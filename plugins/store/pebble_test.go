package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skein-p2p/skein/plugins/store/internal/storetest"
	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

func TestMain(m *testing.M) {
	// The durability and lock tests re-execute this binary as a child.
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	// The out-of-process conformance tests re-execute it as a plugin.
	plugintest.Main(m, map[string]func() sdk.Plugin{
		ID: func() sdk.Plugin { return New() },
	})
}

// openPebble opens a fresh store in a temporary directory, stopped at cleanup.
func openPebble(t testing.TB) sdk.Store {
	t.Helper()
	return openAt(t, t.TempDir())
}

func openAt(t testing.TB, dir string) *Pebble {
	t.Helper()
	p, err := Open(context.Background(), Config{Path: dir, CacheSize: 8 << 20})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := p.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return p
}

func TestSemantics(t *testing.T) { storetest.Run(t, openPebble) }

func TestConfigure(t *testing.T) {
	tests := []struct {
		name      string
		config    map[string]any
		wantErrs  []string // keys with an error diagnostic, in order
		wantWarns []string
		want      Config
	}{
		{name: "path only", config: map[string]any{"path": "/d"}, want: Config{Path: "/d", CacheSize: DefaultCacheSize}},
		{name: "all keys", config: map[string]any{"path": "/d", "sync_writes": true, "cache_size": "16MiB"},
			want: Config{Path: "/d", SyncWrites: true, CacheSize: 16 << 20}},
		{name: "cache int", config: map[string]any{"path": "/d", "cache_size": 2 << 20}, want: Config{Path: "/d", CacheSize: 2 << 20}},
		{name: "cache float64 as from JSON", config: map[string]any{"path": "/d", "cache_size": float64(3 << 20)}, want: Config{Path: "/d", CacheSize: 3 << 20}},
		{name: "cache decimal units", config: map[string]any{"path": "/d", "cache_size": "1.5 GB"}, want: Config{Path: "/d", CacheSize: 1500000000}},
		{name: "cache zero means default", config: map[string]any{"path": "/d", "cache_size": 0}, want: Config{Path: "/d", CacheSize: DefaultCacheSize}},
		{name: "cache below minimum warns", config: map[string]any{"path": "/d", "cache_size": "4KiB"}, wantWarns: []string{"cache_size"},
			want: Config{Path: "/d", CacheSize: minCacheSize}},
		{name: "sync_writes string from env", config: map[string]any{"path": "/d", "sync_writes": "true"}, want: Config{Path: "/d", SyncWrites: true, CacheSize: DefaultCacheSize}},
		{name: "relative path warns", config: map[string]any{"path": "data/store"}, wantWarns: []string{"path"},
			want: Config{Path: "data/store", CacheSize: DefaultCacheSize}},
		{name: "nil config", config: nil, wantErrs: []string{"path"}},
		{name: "missing path", config: map[string]any{"sync_writes": false}, wantErrs: []string{"path"}},
		{name: "empty path", config: map[string]any{"path": "  "}, wantErrs: []string{"path"}},
		{name: "path not a string", config: map[string]any{"path": 42}, wantErrs: []string{"path"}},
		{name: "path with NUL", config: map[string]any{"path": "a\x00b"}, wantErrs: []string{"path"}},
		{name: "sync_writes not a bool", config: map[string]any{"path": "/d", "sync_writes": "often"}, wantErrs: []string{"sync_writes"}},
		{name: "sync_writes a number", config: map[string]any{"path": "/d", "sync_writes": 1}, wantErrs: []string{"sync_writes"}},
		{name: "cache bad unit", config: map[string]any{"path": "/d", "cache_size": "64 parsecs"}, wantErrs: []string{"cache_size"}},
		{name: "cache negative", config: map[string]any{"path": "/d", "cache_size": -5}, wantErrs: []string{"cache_size"}},
		{name: "cache fractional bytes", config: map[string]any{"path": "/d", "cache_size": 1.5}, wantErrs: []string{"cache_size"}},
		{name: "cache absurd", config: map[string]any{"path": "/d", "cache_size": "9000TiB"}, wantErrs: []string{"cache_size"}},
		{name: "cache wrong type", config: map[string]any{"path": "/d", "cache_size": []any{1}}, wantErrs: []string{"cache_size"}},
		{name: "cache empty string", config: map[string]any{"path": "/d", "cache_size": ""}, wantErrs: []string{"cache_size"}},
		{name: "unknown keys", config: map[string]any{"path": "/d", "zeta": 1, "alpha": "x"}, wantErrs: []string{"alpha", "zeta"}},
		{name: "several errors at once", config: map[string]any{"path": 1, "sync_writes": "x", "cache_size": "y"},
			wantErrs: []string{"path", "sync_writes", "cache_size"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New()
			diags, err := p.Configure(context.Background(), tc.config)
			if err != nil {
				t.Fatalf("configure: %v", err)
			}
			var errs, warns []string
			for _, d := range diags {
				if d.Message == "" {
					t.Errorf("diagnostic for %q has no message", d.Key)
				}
				switch d.Severity {
				case sdk.SeverityError:
					errs = append(errs, d.Key)
				case sdk.SeverityWarning:
					warns = append(warns, d.Key)
				default:
					t.Errorf("diagnostic with severity %d", d.Severity)
				}
			}
			if fmt.Sprint(errs) != fmt.Sprint(tc.wantErrs) || fmt.Sprint(warns) != fmt.Sprint(tc.wantWarns) {
				t.Fatalf("errors on %v, warnings on %v; want %v, %v (%+v)", errs, warns, tc.wantErrs, tc.wantWarns, diags)
			}
			if len(tc.wantErrs) > 0 {
				if p.configured {
					t.Fatal("a config with errors was applied")
				}
				if err := p.Start(context.Background()); !errors.Is(err, ErrNotConfigured) {
					t.Fatalf("start after a bad config: %v, want ErrNotConfigured", err)
				}
				return
			}
			if p.cfg != tc.want {
				t.Fatalf("config = %+v, want %+v", p.cfg, tc.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	d, err := New().Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "store.pebble" || len(d.Kinds) != 1 || d.Kinds[0] != sdk.KindStore || d.Version == "" {
		t.Fatalf("describe = %+v", d)
	}
	keys := map[string]sdk.ConfigKey{}
	for _, k := range d.ConfigSchema {
		keys[k.Key] = k
	}
	for _, k := range []string{"path", "sync_writes", "cache_size"} {
		if keys[k].Description == "" {
			t.Errorf("config schema lacks %q", k)
		}
	}
	if !keys["path"].Required {
		t.Error("path is not marked required")
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "nested", "data")

	p := New()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("stop before start: %v", err)
	}
	if err := p.Start(ctx); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("start unconfigured: %v, want ErrNotConfigured", err)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("stop after failed start: %v", err)
	}
	if err := p.Put(ctx, []byte("k"), []byte("v")); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("put before start: %v, want ErrNotStarted", err)
	}
	if st, _ := p.Status(ctx); st.Healthy {
		t.Fatal("unstarted store reports healthy")
	}
	if diags, err := p.Configure(ctx, map[string]any{"path": dir}); err != nil || len(diags) != 0 {
		t.Fatalf("configure: %v %v", diags, err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("second start: %v", err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory: %v, %v; want mode 0700", fi, err)
	}
	if _, err := p.Configure(ctx, map[string]any{"path": dir}); err == nil {
		t.Fatal("configure while running succeeded")
	}
	storetest.MustPut(t, p, "k", "v")
	if st, _ := p.Status(ctx); !st.Healthy || st.Details["path"] != dir {
		t.Fatalf("status = %+v", st)
	}
	for i := range 3 {
		if err := p.Stop(ctx); err != nil {
			t.Fatalf("stop #%d: %v", i, err)
		}
	}
	if _, err := p.Get(ctx, []byte("k")); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("get after stop: %v", err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if v := storetest.MustGet(t, p, "k"); v != "v" {
		t.Fatalf("after restart k=%q", v)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStartBadDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"path is a file", file},
		{"parent is a file", filepath.Join(file, "sub")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Open(context.Background(), Config{Path: tc.path})
			if err == nil {
				_ = p.Stop(context.Background())
				t.Fatal("opened a store on a file")
			}
			if !strings.Contains(err.Error(), tc.path) && !strings.Contains(err.Error(), "file") {
				t.Fatalf("error does not say what is wrong: %v", err)
			}
		})
	}
}

// TestStopWaitsForQuery: Stop does not close pebble under an open query; the
// query ends with ErrClosed at its next step and Stop then completes.
func TestStopWaitsForQuery(t *testing.T) {
	ctx := context.Background()
	p, err := Open(ctx, Config{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		storetest.MustPut(t, p, fmt.Sprintf("q%d", i), "v")
	}
	next, stopIter := iter.Pull2(p.Query(ctx, sdk.Query{}))
	defer stopIter()
	if _, err, ok := next(); !ok || err != nil {
		t.Fatalf("first result: %v %v", err, ok)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop(ctx) }()
	waitFor(t, "stop to begin", p.stopRequested)
	select {
	case err := <-stopped:
		t.Fatalf("stop returned (%v) while a query was open", err)
	default:
	}
	if _, err := p.Get(ctx, []byte("q1")); !errors.Is(err, ErrClosed) {
		t.Fatalf("get during stop: %v, want ErrClosed", err)
	}
	if _, err, ok := next(); !ok || !errors.Is(err, ErrClosed) {
		t.Fatalf("query step during stop: %v %v, want ErrClosed", err, ok)
	}
	if _, _, ok := next(); ok {
		t.Fatal("query went on after ErrClosed")
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestStopDeadline: a Stop whose context ends while a query is held open
// returns the context error and leaves the store closed to new work; a later
// Stop finishes once the query is done.
func TestStopDeadline(t *testing.T) {
	ctx := context.Background()
	p, err := Open(ctx, Config{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustPut(t, p, "a", "1")
	next, stopIter := iter.Pull2(p.Query(ctx, sdk.Query{}))
	if _, err, ok := next(); !ok || err != nil {
		t.Fatalf("first result: %v %v", err, ok)
	}
	expired, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Stop(expired); !errors.Is(err, context.Canceled) {
		t.Fatalf("stop with an ended context: %v", err)
	}
	if err := p.Put(ctx, []byte("b"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after an unfinished stop: %v", err)
	}
	stopIter()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

func TestReopenPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tests := []struct {
		name     string
		sync     bool
		syncCall bool
		config   Config
	}{
		{"unsynced writes, clean stop", false, false, Config{Path: dir}},
		{"synced batches", true, false, Config{Path: dir}},
		{"explicit sync", false, true, Config{Path: dir}},
		{"sync_writes", false, false, Config{Path: dir, SyncWrites: true}},
	}
	for round, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Open(ctx, tc.config)
			if err != nil {
				t.Fatal(err)
			}
			prefix := fmt.Sprintf("r%d/", round)
			for i := range 50 {
				storetest.MustPut(t, p, fmt.Sprintf("%sput%02d", prefix, i), "p")
			}
			ops := []sdk.Op{}
			for i := range 50 {
				ops = append(ops, sdk.Op{Key: fmt.Appendf(nil, "%sbatch%02d", prefix, i), Value: []byte("b")})
			}
			ops = append(ops, sdk.Op{Key: []byte(prefix + "put00"), Delete: true})
			if err := p.Batch(ctx, ops, tc.sync); err != nil {
				t.Fatal(err)
			}
			if tc.syncCall {
				if err := p.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			q := openAt(t, dir)
			keys, _ := storetest.Collect(t, q.Query(ctx, sdk.Query{Prefix: []byte(prefix)}))
			if len(keys) != 99 {
				t.Fatalf("after reopen %d keys, want 99", len(keys))
			}
			if ok, _ := q.Has(ctx, []byte(prefix+"put00")); ok {
				t.Fatal("deleted key came back")
			}
			// every earlier round's data is still there too
			all, _ := storetest.Collect(t, q.Query(ctx, sdk.Query{KeysOnly: true}))
			if len(all) != 99*(round+1) {
				t.Fatalf("store holds %d keys, want %d", len(all), 99*(round+1))
			}
			if err := q.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLockedInProcess(t *testing.T) {
	dir := t.TempDir()
	openAt(t, dir)
	p, err := Open(context.Background(), Config{Path: dir})
	if err == nil {
		_ = p.Stop(context.Background())
		t.Fatal("second open of a locked directory succeeded")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v, want ErrLocked naming %s", err, dir)
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStopUnderLoad: Stop while goroutines hammer the store; every call
// either succeeds or fails with a lifecycle error, none panics, and Stop
// returns once they are out.
func TestStopUnderLoad(t *testing.T) {
	ctx := context.Background()
	p, err := Open(ctx, Config{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	const workers = 4
	var (
		wg      sync.WaitGroup
		started sync.WaitGroup
		errs    = make(chan error, workers)
	)
	started.Add(workers)
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				if i == 10 {
					started.Done()
				}
				k := fmt.Appendf(nil, "w%d/%d", w, i)
				var err error
				switch i % 4 {
				case 0:
					err = p.Put(ctx, k, k)
				case 1:
					_, err = p.Get(ctx, k)
					if errors.Is(err, sdk.ErrNotFound) {
						err = nil
					}
				case 2:
					err = p.Batch(ctx, []sdk.Op{{Key: k, Value: k}}, i%8 == 2)
				case 3:
					for _, qerr := range p.Query(ctx, sdk.Query{Prefix: fmt.Appendf(nil, "w%d/", w), Limit: 20}) {
						if qerr != nil {
							err = qerr
							break
						}
					}
				}
				if err != nil {
					if i < 10 {
						started.Done()
					}
					if !errors.Is(err, sdk.ErrLifecycle) {
						errs <- fmt.Errorf("worker %d op %d: %w", w, i, err)
					}
					return
				}
			}
		})
	}
	started.Wait()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("stop under load: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
